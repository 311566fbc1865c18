"""A client that stops reading is dropped once too much waits for it; the turn and other clients go on."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct

import pytest
import websockets
from rest_framework.authtoken.models import Token

from tests.conftest import ServerProcess
from tests.factories import is_finish, make_session, make_user, receive_until, script, send_frame

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

BACKLOG_LIMIT = 128 * 1024
TCP_CLOSE = 7  # Linux tcp_info.tcpi_state


@pytest.fixture(scope="module")
def small_backlog_server(django_db_setup, django_db_blocker, local_model, tmp_path_factory):
    server = ServerProcess(local_model_url=local_model.url, var_dir=tmp_path_factory.mktemp("daphne-backlog"),
                           extra_env={"COPILOT_MAX_SEND_BACKLOG_BYTES": str(BACKLOG_LIMIT)})
    yield server
    server.stop()


class StalledClient:
    """A websocket client that resumes, then never reads again (a tiny receive buffer fills at once)."""

    def __init__(self, port: int, session_id, token: str) -> None:
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.socket.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.socket.sendall((f"GET /ws/sessions/{session_id}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                             f"Authorization: Token {token}\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.socket.recv(1)  # byte by byte: leave the frames after the handshake unread
        assert response.startswith(b"HTTP/1.1 101"), response
        self.send_text(json.dumps({"type": "resume", "after_seq": 0}))

    def send_text(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        header = bytes([0x81, 0x80 | len(payload)]) if len(payload) < 126 else \
            bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(payload))
        self.socket.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def reset_by_server(self) -> bool:
        state = self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        return state == TCP_CLOSE


def big_turn(n: int) -> str:
    """About 260 kB of events: the prompt is echoed, and four calls each carry 20 kB in and out."""
    filler = "x" * 20_000
    tools = [{"name": "mcp__copilot__run_block",
              "input": {"block": "text", "input": {"template": f"{filler}{{n}}", "values": {"n": f"{n}.{i}"}}}}
             for i in range(4)]
    return script({"tools": tools}, {"text": f"Turn {n} " + "word " * 2_000})


@pytest.fixture
def owner():
    user = make_user()
    return make_session(user), Token.objects.create(user=user).key


async def test_a_client_that_stops_reading_is_dropped_and_the_reading_client_gets_every_turn(
        small_backlog_server, owner):
    session, token = owner
    stalled = StalledClient(small_backlog_server.port, session.id, token)
    try:
        async with websockets.connect(f"{small_backlog_server.ws_url}/ws/sessions/{session.id}/",
                                      additional_headers={"Authorization": f"Token {token}"},
                                      max_size=None) as reader:
            await reader.send(json.dumps({"type": "resume", "after_seq": 0}))
            for n in range(1, 6):
                await reader.send(json.dumps(send_frame(big_turn(n))))
                frames = await receive_until(reader, is_finish, timeout=60)
                assert frames[-2]["chunk"]["data"]["status"] == "completed"
                if stalled.reset_by_server():
                    break
            assert stalled.reset_by_server(), "the server still holds a connection whose client reads nothing"
            assert n <= 3  # ~260 kB a turn; the kernel (256 kB), Twisted (64 kB) and the limit hold ~450 kB
    finally:
        stalled.socket.close()

"""A client that stops reading is dropped once too much waits for it too long; the turn and other clients go on,
and a client that reads at full speed is never dropped, however much it is sent at once."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time

import httpx
import pytest
import websockets
from rest_framework.authtoken.models import Token

from tests.conftest import ServerProcess
from tests.factories import is_finish, make_session, make_user, receive_until, script, send_frame, text_tool, wait_tool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

BACKLOG_LIMIT = 64 * 1024
CALLS = 15
TCP_CLOSE = 7  # Linux tcp_info.tcpi_state


@pytest.fixture(scope="module")
def small_backlog_server(django_db_setup, django_db_blocker, local_model, tmp_path_factory):
    server = ServerProcess(local_model_url=local_model.url, var_dir=tmp_path_factory.mktemp("daphne-backlog"),
                           extra_env={"COPILOT_MAX_SEND_BACKLOG_BYTES": str(BACKLOG_LIMIT),
                                      "COPILOT_SEND_BACKLOG_GRACE_SECONDS": "1"})
    yield server
    server.stop()


class StalledClient:
    """A client that sends one request, then never reads again (a tiny receive buffer fills at once)."""

    def __init__(self, port: int, request_head: str) -> None:
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.socket.connect(("127.0.0.1", port))
        self.socket.sendall(f"{request_head}Host: 127.0.0.1:{port}\r\n\r\n".encode())

    @classmethod
    def websocket(cls, port: int, session_id, token: str) -> StalledClient:
        key = base64.b64encode(os.urandom(16)).decode()
        client = cls(port, f"GET /ws/sessions/{session_id}/ HTTP/1.1\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Authorization: Token {token}\r\n")
        response = b""
        while b"\r\n\r\n" not in response:
            response += client.socket.recv(1)  # byte by byte: leave the frames after the handshake unread
        assert response.startswith(b"HTTP/1.1 101"), response
        client.send_text(json.dumps({"type": "resume", "after_seq": 0}))
        return client

    @classmethod
    def event_stream(cls, port: int, session_id, token: str) -> StalledClient:
        return cls(port, f"GET /api/sessions/{session_id}/stream/ HTTP/1.1\r\nAuthorization: Token {token}\r\n")

    def send_text(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        assert len(payload) < 126
        self.socket.sendall(bytes([0x81, 0x80 | len(payload)]) + mask +
                            bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def reset_by_server(self) -> bool:
        state = self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        return state == TCP_CLOSE

    async def until_reset_by_server(self, timeout: float = 10) -> bool:
        """Whether the server resets the connection within `timeout` (its grace is 1 s here)."""
        deadline = time.monotonic() + timeout
        while not self.reset_by_server():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)  # the state of a TCP connection: nothing to await
        return True


def big_turn() -> str:
    """About 650 kB of events from a 35 kB prompt: 15 calls whose outputs are 20 copies of their input.

    (40 kB each: the CLI replaces a tool output over ~50 kB with a preview.)
    """
    tools = [text_tool("{a}" * 20, {"a": f"{i % 10}" * 2_000}) for i in range(CALLS)]
    return script({"tools": [wait_tool(0.5)]}, {"tools": tools}, {"text": "All written."})


@pytest.fixture
def owner():
    user = make_user()
    return make_session(user), Token.objects.create(user=user).key


async def run_turn_watched(server, session, token, *, once_started=lambda: None) -> None:
    """Send `big_turn` from a client that reads everything (calling `once_started` after its ack), and check
    that this client got the whole turn."""
    async with websockets.connect(f"{server.ws_url}/ws/sessions/{session.id}/",
                                  additional_headers={"Authorization": f"Token {token}"}, max_size=None) as reader:
        await reader.send(json.dumps({"type": "resume", "after_seq": 0}))
        await reader.send(json.dumps(send_frame(big_turn())))
        await receive_until(reader, lambda frame: frame.get("type") == "ack")
        once_started()
        frames = await receive_until(reader, is_finish, timeout=60)
    assert frames[-2]["chunk"]["data"]["status"] == "completed"
    outputs = sum(frame["chunk"]["type"] == "tool-output-available" for frame in frames)
    assert outputs == 1 + CALLS  # the wait, then the text calls


async def test_a_websocket_client_that_stops_reading_is_dropped_and_the_turn_goes_on(small_backlog_server, owner):
    session, token = owner
    stalled = StalledClient.websocket(small_backlog_server.port, session.id, token)
    try:
        await run_turn_watched(small_backlog_server, session, token)
        assert await stalled.until_reset_by_server(), "the server still holds a websocket whose client reads nothing"
    finally:
        stalled.socket.close()


async def test_an_event_stream_client_that_stops_reading_is_dropped_and_the_turn_goes_on(
        small_backlog_server, owner):
    session, token = owner
    stalled = []  # the stream answers 204 while no turn runs: it is opened once the turn has started
    try:
        await run_turn_watched(small_backlog_server, session, token, once_started=lambda: stalled.append(
            StalledClient.event_stream(small_backlog_server.port, session.id, token)))
        assert await stalled[0].until_reset_by_server(), "the server still holds a stream whose client reads nothing"
    finally:
        for client in stalled:
            client.socket.close()


async def test_a_client_reading_a_replay_far_larger_than_the_limit_gets_all_of_it(small_backlog_server, owner):
    session, token = owner
    await run_turn_watched(small_backlog_server, session, token)  # ~650 kB of events, ten times the limit
    async with websockets.connect(f"{small_backlog_server.ws_url}/ws/sessions/{session.id}/",
                                  additional_headers={"Authorization": f"Token {token}"}, max_size=None) as late:
        await late.send(json.dumps({"type": "resume", "after_seq": 0}))  # the whole turn, written in one go
        frames = await receive_until(late, is_finish, timeout=60)
    assert [frame["seq"] for frame in frames] == list(range(1, len(frames) + 1))
    assert sum(frame["chunk"]["type"] == "tool-output-available" for frame in frames) == 1 + CALLS


async def test_an_event_stream_replay_far_larger_than_the_limit_is_read_whole(small_backlog_server, owner):
    session, token = owner
    await run_turn_watched(small_backlog_server, session, token)
    async with httpx.AsyncClient(base_url=small_backlog_server.http_url, timeout=60,
                                 headers={"Authorization": f"Token {token}"}) as client:
        async with client.stream("GET", f"/api/sessions/{session.id}/stream/?after=0") as response:
            body = b"".join([part async for part in response.aiter_bytes()])
    assert body.endswith(b"data: [DONE]\n\n")
    assert body.count(b'"type": "tool-output-available"') == 1 + CALLS

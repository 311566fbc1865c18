"""Bad input on the websocket gets a clear answer, and the socket stays usable."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from copilot_site.asgi import application
from tests.factories import make_session, make_user, next_frame

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def two_users():
    owner, stranger = make_user(), make_user()
    return make_session(owner), Token.objects.create(user=owner).key, Token.objects.create(user=stranger).key


def communicator_for(session_id, headers=()) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/sessions/{session_id}/", headers=list(headers))


def token_header(token: str):
    return (b"authorization", f"Token {token}".encode())


async def closed_with(communicator: WebsocketCommunicator) -> int:
    connected, _ = await communicator.connect()
    assert connected  # the handshake is accepted, then closed with a code
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.close"
    return output["code"]


async def test_unauthenticated_socket_is_closed_4401():
    session, _, _ = await two_users()
    assert await closed_with(communicator_for(session.id)) == 4401


async def test_bad_token_is_closed_4401():
    session, _, _ = await two_users()
    assert await closed_with(communicator_for(session.id, [token_header("nope")])) == 4401


async def test_unknown_and_foreign_sessions_are_both_4404():
    session, _, stranger = await two_users()
    assert await closed_with(communicator_for(session.id, [token_header(stranger)])) == 4404
    assert await closed_with(communicator_for("00000000-0000-0000-0000-000000000000", [token_header(stranger)])) == 4404
    assert await closed_with(communicator_for("not-a-uuid", [token_header(stranger)])) == 4404


async def test_cross_site_origin_is_refused_at_the_handshake():
    session, token, _ = await two_users()
    communicator = communicator_for(session.id, [token_header(token), (b"origin", b"https://evil.example")])
    connected, _ = await communicator.connect()
    assert not connected


@pytest.mark.parametrize(("raw", "code"), [
    ("not json", "bad_frame"),
    ("[1, 2]", "bad_frame"),
    ('{"no": "type"}', "bad_frame"),
    ('{"type": 7}', "bad_frame"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "resume", "after_seq": -1}', "bad_seq"),
    ('{"type": "resume", "after_seq": 99}', "bad_seq"),
    ('{"type": "resume", "after_seq": "1"}', "bad_frame"),
    # A send whose text or client_message_id is missing or not a string is malformed (PROTOCOL §3).
    ('{"type": "send", "text": "hi"}', "bad_frame"),
    ('{"type": "send", "client_message_id": "8f0e7c55-6a33-4c3a-9d59-8f4a4b7e1d10"}', "bad_frame"),
    ('{"type": "send", "text": 5, "client_message_id": "8f0e7c55-6a33-4c3a-9d59-8f4a4b7e1d10"}', "bad_frame"),
    ('{"type": "send", "text": "hi", "client_message_id": 12}', "bad_frame"),
    ('{"type": "send", "text": "hi", "client_message_id": "not-a-uuid"}', "bad_frame"),
    ('{"type": "send", "text": ["hi"], "client_message_id": null}', "bad_frame"),
    ('[' * 5000 + ']' * 5000, "bad_frame"),
    ('{"type": "send", "text": "hi", "client_message_id": "8f0e7c55-6a33-4c3a-9d59-8f4a4b7e1d10", "x": '
     + '[' * 5000 + ']' * 5000 + '}', "bad_frame"),
    ('{"type": "send", "text": "   ", "client_message_id": "8f0e7c55-6a33-4c3a-9d59-8f4a4b7e1d10"}', "bad_message"),
    ('{"type": "stop"}', "nothing_running"),
])
async def test_bad_frames_get_an_error_frame_and_the_socket_stays_open(raw, code):
    session, token, _ = await two_users()
    communicator = communicator_for(session.id, [token_header(token)])
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=raw)
    error = await next_frame(communicator, timeout=5)
    assert error["type"] == "error" and error["code"] == code and error["message"]
    await communicator.send_json_to({"type": "ping"})
    assert await next_frame(communicator, timeout=5) == {"type": "pong"}
    await communicator.disconnect()


async def test_oversized_frame_is_refused(settings):
    session, token, _ = await two_users()
    communicator = communicator_for(session.id, [token_header(token)])
    assert (await communicator.connect())[0]
    limit = settings.COPILOT["MAX_FRAME_BYTES"]
    await communicator.send_to(text_data=json.dumps({"type": "send", "text": "x" * limit}))
    error = await next_frame(communicator, timeout=5)
    assert error["code"] == "too_large"
    await communicator.disconnect()


async def test_over_long_message_is_bad_message(settings):
    settings.COPILOT = {**settings.COPILOT, "MAX_MESSAGE_CHARS": 10}
    session, token, _ = await two_users()
    communicator = communicator_for(session.id, [token_header(token)])
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"type": "send", "text": "x" * 11,
                                     "client_message_id": "8f0e7c55-6a33-4c3a-9d59-8f4a4b7e1d10"})
    error = await next_frame(communicator, timeout=5)
    assert error["code"] == "bad_message" and "10" in error["message"]
    await communicator.disconnect()

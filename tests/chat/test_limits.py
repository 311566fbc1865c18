"""Limits that hold under abuse: frame floods, reconnect storms, turn floods, too many running turns."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from chat.limits import counter
from chat.models import Message
from copilot_site.asgi import application
from tests.factories import make_session, make_user, next_frame, send_frame

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_counts():
    counter._counts.clear()


@database_sync_to_async
def user_with_sessions(count=1):
    user = make_user()
    return [make_session(user) for _ in range(count)], Token.objects.create(user=user).key


async def open_socket(session, token) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws/sessions/{session.id}/",
                                         headers=[(b"authorization", f"Token {token}".encode())])
    assert (await communicator.connect())[0]
    return communicator


def limits(settings, **overrides):
    settings.COPILOT = {**settings.COPILOT, "RATE_LIMITS": {**settings.COPILOT["RATE_LIMITS"], **overrides}}


async def test_a_frame_flood_is_throttled_and_others_are_still_served(settings):
    limits(settings, frames=(5, 60))
    (session,), token = await user_with_sessions()
    flooder = await open_socket(session, token)
    for _ in range(10):
        await flooder.send_json_to({"type": "ping"})
    answers = [await next_frame(flooder, timeout=5) for _ in range(10)]
    assert answers[:5] == [{"type": "pong"}] * 5
    assert {a["code"] for a in answers[5:]} == {"rate_limited"}
    (other_session,), other_token = await user_with_sessions()
    calm = await open_socket(other_session, other_token)
    await calm.send_json_to({"type": "ping"})
    assert await next_frame(calm, timeout=5) == {"type": "pong"}
    await flooder.disconnect()
    await calm.disconnect()


async def test_a_reconnect_storm_gets_no_replays_past_the_limit(settings):
    limits(settings, resumes=(3, 60))
    (session,), token = await user_with_sessions()
    answers = []
    for _ in range(6):
        socket = await open_socket(session, token)
        await socket.send_json_to({"type": "resume", "after_seq": 0})
        await socket.send_json_to({"type": "ping"})
        answers.append(await next_frame(socket, timeout=5))
        await socket.disconnect()
    assert answers[:3] == [{"type": "pong"}] * 3  # resumed (nothing to replay), then the pong
    assert [a.get("code") for a in answers[3:]] == ["rate_limited"] * 3


async def test_a_turn_flood_is_refused(settings):
    limits(settings, turns=(1, 60))
    (session,), token = await user_with_sessions()
    socket = await open_socket(session, token)
    await socket.send_json_to(send_frame("   "))  # counts, even though it is refused for being empty
    assert (await next_frame(socket, timeout=5))["code"] == "bad_message"
    await socket.send_json_to(send_frame("hello"))
    refused = await next_frame(socket, timeout=5)
    assert refused["code"] == "rate_limited" and "turns" in refused["message"]
    assert not await database_sync_to_async(Message.objects.filter(session=session).exists)()
    await socket.disconnect()

"""PROTOCOL §8 over the websocket: `send` with `edit_of`, the `regenerate` frame, where each prompt sits in the tree
(`data-user-message`), usage before `data-turn`, the daily budget, and their refusals. Real SDK, CLI and local
model; the `echo` step says what the model was given."""

from __future__ import annotations

import json
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from chat.actions.turns import add_usage_of_today
from chat.models import Message, Turn, TurnStatus, UsageDay
from copilot_site.asgi import application
from tests.factories import (
    chunk_types,
    is_finish,
    make_session,
    make_user,
    next_frame,
    receive_until,
    script,
    text_tool,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_turn_left_running")]

ECHO = script({"echo": "user_messages"})


@database_sync_to_async
def owner_with_session():
    user = make_user()
    return user, make_session(user), Token.objects.create(user=user).key


async def connect(session, token: str) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, f"/ws/sessions/{session.id}/",
                                   headers=[(b"authorization", f"Token {token}".encode())])
    assert (await socket.connect())[0]
    await socket.send_json_to({"type": "resume", "after_seq": 0})
    return socket


async def exchange(socket, frame: dict) -> tuple[dict, list[dict]]:
    """Send a frame that starts a turn; returns its ack and the turn's events to `finish`."""
    await socket.send_json_to(frame)
    frames = await receive_until(socket, is_finish)
    ack = next(f for f in frames if f["type"] == "ack")
    return ack, [f for f in frames if f["type"] == "event" and f["turn_id"] == ack["turn_id"]]


def answer_of(events) -> list[str]:
    return [text.split("\n")[0] for text in json.loads("".join(
        e["chunk"]["delta"] for e in events if e["chunk"]["type"] == "text-delta"))]


def chunk_of(events, kind: str) -> dict:
    return next(e["chunk"] for e in events if e["chunk"]["type"] == kind)


def send(text: str, **extra) -> dict:
    return {"type": "send", "text": text, "client_message_id": str(uuid.uuid4()), **extra}


async def test_an_edit_over_the_socket_is_answered_on_its_own_branch():
    _, session, token = await owner_with_session()
    socket = await connect(session, token)
    first_ack, first = await exchange(socket, send(f"one\n{ECHO}"))
    second_ack, _ = await exchange(socket, send(f"two\n{ECHO}"))
    ack, events = await exchange(socket, send(f"two, edited\n{ECHO}", edit_of=second_ack["message_id"]))
    await socket.disconnect()

    assert answer_of(events) == ["one", "two, edited"]
    prompt = chunk_of(events, "data-user-message")["data"]
    assert prompt["message_id"] == ack["message_id"] != second_ack["message_id"]
    assert prompt["parent_id"] == chunk_of(first, "start")["messageId"]  # it follows the first answer
    assert prompt["branch"] == {"index": 1, "count": 2, "siblings": [second_ack["message_id"], ack["message_id"]]}
    assert prompt["answer_branch"]["count"] == 1
    assert chunk_of(first, "data-user-message")["data"]["parent_id"] is None


async def test_regenerate_over_the_socket_answers_the_same_message_again():
    _, session, token = await owner_with_session()
    socket = await connect(session, token)
    await exchange(socket, send(f"one\n{ECHO}"))
    second_ack, second = await exchange(socket, send(f"two\n{ECHO}"))
    first_answer_id = chunk_of(second, "start")["messageId"]
    ack, events = await exchange(socket, {"type": "regenerate", "message_id": first_answer_id,
                                          "client_message_id": str(uuid.uuid4())})
    await socket.disconnect()

    assert ack["message_id"] == second_ack["message_id"]  # the user message answered, as for a send
    assert answer_of(events) == ["one", "two"]
    prompt = chunk_of(events, "data-user-message")["data"]
    assert prompt["message_id"] == second_ack["message_id"]
    assert prompt["answer_branch"] == {"index": 1, "count": 2,
                                       "siblings": [first_answer_id, chunk_of(events, "start")["messageId"]]}


async def test_bad_edit_and_regenerate_frames_get_clear_errors_and_the_socket_stays_open():
    _, session, token = await owner_with_session()
    socket = await connect(session, token)
    ack, events = await exchange(socket, send(script({"text": "hello"})))
    answer_id = chunk_of(events, "start")["messageId"]
    cases = [
        (send("x", edit_of="not-a-uuid"), "bad_frame"),
        (send("x", edit_of=5), "bad_frame"),
        (send("x", edit_of=str(uuid.uuid4())), "unknown_message"),
        (send("x", edit_of=answer_id), "unknown_message"),
        ({"type": "regenerate", "message_id": ack["message_id"], "client_message_id": str(uuid.uuid4())},
         "unknown_message"),
        ({"type": "regenerate", "client_message_id": str(uuid.uuid4())}, "bad_frame"),
        ({"type": "regenerate", "message_id": answer_id}, "bad_frame"),
    ]
    for frame, code in cases:
        await socket.send_json_to(frame)
        reply = await next_frame(socket, timeout=10)
        assert reply["type"] == "error" and reply["code"] == code, (frame, reply)
    await socket.send_json_to({"type": "ping"})
    assert (await next_frame(socket, timeout=10))["type"] == "pong"
    await socket.disconnect()
    assert await database_sync_to_async(Turn.objects.filter(session=session).count)() == 1


async def test_usage_comes_just_before_data_turn_with_real_token_counts_and_is_saved():
    user, session, token = await owner_with_session()
    socket = await connect(session, token)
    _, events = await exchange(socket, send(script({"tools": [text_tool("x")]}, {"text": "done"})))
    await socket.disconnect()

    types = chunk_types(events)
    assert types[-3:] == ["data-usage", "data-turn", "finish"]
    usage = chunk_of(events, "data-usage")["data"]
    assert set(usage) == {"input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                          "cost_usd"}
    # Two model requests: the second reads from the cache what the first (or an earlier turn) wrote to it, the
    # copilot's tools and system prompt, and writes what is new.
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0 and usage["cost_usd"] > 0
    assert usage["cache_read_input_tokens"] > 1_000 and usage["cache_creation_input_tokens"] > 0
    saved = await database_sync_to_async(lambda: Message.objects.get(session=session, role="assistant").usage)()
    assert saved == usage
    today = await database_sync_to_async(lambda: UsageDay.objects.get(user=user))()
    assert today.turns == 1 and today.cost_usd == pytest.approx(usage["cost_usd"])


async def test_over_budget_a_send_is_refused_and_a_turn_that_reaches_it_fails_saying_so(settings):
    settings.COPILOT = {**settings.COPILOT, "USER_DAILY_BUDGET_USD": 0.02}
    user, session, token = await owner_with_session()
    await database_sync_to_async(add_usage_of_today)(owner_id=user.pk, usage={"cost_usd": 0.0199})
    socket = await connect(session, token)
    many_rounds = script(*[{"tools": [text_tool(str(n))]} for n in range(6)], {"text": "never reached"})
    _, events = await exchange(socket, send(many_rounds))
    assert chunk_of(events, "data-turn")["data"]["status"] == TurnStatus.FAILED
    assert "budget" in chunk_of(events, "error")["errorText"]
    assert chunk_types(events).index("data-usage") < chunk_types(events).index("data-turn")

    await socket.send_json_to(send("one more"))
    refused = await next_frame(socket, timeout=10)
    assert refused["type"] == "error" and refused["code"] == "over_budget"
    await socket.disconnect()
    assert await database_sync_to_async(Turn.objects.filter(session=session).count)() == 1

"""One real turn through the websocket consumer: real SDK, real CLI, the local model, the database."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from chat.models import ToolCall, ToolCallStatus, Turn, TurnStatus
from copilot_site.asgi import application
from tests.factories import (
    assert_turn_well_formed,
    chunk_types,
    is_finish,
    make_session,
    make_user,
    receive_until,
    script,
    send_frame,
    streamed_text,
    wait_tool,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_turn_left_running")]

THREE_WAITS = script({"tools": [wait_tool(2), wait_tool(1), wait_tool(3)]}, {"text": "All three finished."})


@database_sync_to_async
def owner_with_session():
    user = make_user()
    return user, make_session(user), Token.objects.create(user=user).key


@database_sync_to_async
def turn_with_calls(turn_id):
    turn = Turn.objects.select_related("assistant_message", "user_message").get(pk=turn_id)
    return turn, list(ToolCall.objects.filter(turn=turn).order_by("part_index"))


async def connect(session, token: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws/sessions/{session.id}/",
                                         headers=[(b"authorization", f"Token {token}".encode())])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_three_parallel_tool_calls_then_text(local_model):
    user, session, token = await owner_with_session()
    communicator = await connect(session, token)
    await communicator.send_json_to({"type": "resume", "after_seq": 0})
    frame = send_frame(THREE_WAITS)
    await communicator.send_json_to(frame)

    frames = await receive_until(communicator, is_finish)
    await communicator.disconnect()

    ack, events = frames[0], frames[1:]
    assert ack["type"] == "ack" and ack["client_message_id"] == frame["client_message_id"]
    assert all(e["type"] == "event" and e["turn_id"] == ack["turn_id"] for e in events)
    assert_turn_well_formed(events)
    assert events[0]["seq"] == 1
    types = chunk_types(events)
    # All three calls show before any of them ends: they run side by side.
    first_output = types.index("tool-output-available")
    assert types[:first_output].count("tool-input-available") == 3
    inputs = {e["chunk"]["toolCallId"]: e["chunk"]["input"]["input"]["seconds"]
              for e in events if e["chunk"]["type"] == "tool-input-available"}
    outputs = [(e["chunk"]["toolCallId"], e["chunk"]["output"]) for e in events
               if e["chunk"]["type"] == "tool-output-available"]
    assert [output["seconds"] for _, output in outputs] == [1, 2, 3]  # in the order they finish
    assert all(inputs[tool_call_id] == output["seconds"] for tool_call_id, output in outputs)
    assert streamed_text(events) == "All three finished."
    assert events[-2]["chunk"]["data"] == {"turn_id": ack["turn_id"], "status": "completed"}

    turn, calls = await turn_with_calls(ack["turn_id"])
    assert turn.status == TurnStatus.COMPLETED and turn.finished_at is not None
    assert turn.assistant_message.text == "All three finished."
    assert turn.user_message.text == THREE_WAITS
    assert [(c.status, c.output) for c in calls] == [
        (ToolCallStatus.COMPLETED, {"seconds": 2}), (ToolCallStatus.COMPLETED, {"seconds": 1}),
        (ToolCallStatus.COMPLETED, {"seconds": 3})]

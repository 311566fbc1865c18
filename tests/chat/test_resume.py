"""Nothing lost, nothing twice: resume on the websocket, the seam between replay and live, retention."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from chat.events.factory import get_event_log
from chat.models import ChatSession
from chat.selectors import session_snapshot
from copilot_site.asgi import application
from tests.factories import (
    assert_turn_well_formed,
    is_finish,
    make_session,
    make_user,
    next_frame,
    receive_until,
    script,
    send_frame,
    wait_tool,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_turn_left_running")]


@database_sync_to_async
def owner_with_session():
    user = make_user()
    return make_session(user), Token.objects.create(user=user).key


async def open_socket(session, token, after_seq: int | None = 0) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws/sessions/{session.id}/",
                                         headers=[(b"authorization", f"Token {token}".encode())])
    assert (await communicator.connect())[0]
    if after_seq is not None:
        await communicator.send_json_to({"type": "resume", "after_seq": after_seq})
    return communicator


def events_of(frames):
    return [frame for frame in frames if frame["type"] == "event"]


async def test_reconnect_mid_turn_resumes_without_loss_or_repeat():
    session, token = await owner_with_session()
    first = await open_socket(session, token)
    await first.send_json_to(send_frame(script({"text": "before", "tools": [wait_tool(1)]}, {"text": "after"})))
    seen = events_of(await receive_until(first, lambda f: f.get("type") == "event"
                                         and f["chunk"]["type"] == "tool-input-available"))
    await first.disconnect()  # the network drops

    second = await open_socket(session, token, after_seq=seen[-1]["seq"])
    rest = events_of(await receive_until(second, is_finish))
    await second.disconnect()
    assert_turn_well_formed(seen + rest)


async def test_a_second_device_joining_mid_turn_ends_with_the_same_state():
    session, token = await owner_with_session()
    laptop = await open_socket(session, token)
    await laptop.send_json_to(send_frame(script({"tools": [wait_tool(0.5), wait_tool(1)]}, {"text": "both done"})))
    await receive_until(laptop, lambda f: f.get("type") == "event" and f["chunk"]["type"] == "tool-input-available")
    phone = await open_socket(session, token, after_seq=0)
    on_laptop = events_of(await receive_until(laptop, is_finish))
    on_phone = events_of(await receive_until(phone, is_finish))
    await laptop.disconnect()
    await phone.disconnect()
    assert on_phone[0]["seq"] == 1
    assert on_phone[-len(on_laptop):] == on_laptop  # the laptop's later events, the same and in order
    assert_turn_well_formed(on_phone)


async def test_the_seam_between_replay_and_live_has_no_gap_and_no_repeat(monkeypatch):
    """Events appended while the replay is read arrive live too; each reaches the client once."""
    session, token = await owner_with_session()
    event_log = get_event_log()
    session_id = str(session.id)
    await event_log.append(session_id, None, [{"type": "data-note", "data": {"n": n}} for n in range(1, 4)])
    original_read_after = type(event_log).read_after

    async def read_while_appending(self, sid, after_seq):
        replay = await original_read_after(self, sid, after_seq)
        # Two events land after the replay was read and before it is sent: the classic race.
        await self.append(sid, None, [{"type": "data-note", "data": {"n": 4}}, {"type": "data-note", "data": {"n": 5}}])
        return replay

    monkeypatch.setattr(type(event_log), "read_after", read_while_appending)
    client = await open_socket(session, token, after_seq=1)
    frames = [await next_frame(client, timeout=5) for _ in range(4)]
    monkeypatch.setattr(type(event_log), "read_after", original_read_after)
    await client.send_json_to({"type": "ping"})
    assert await next_frame(client, timeout=5) == {"type": "pong"}  # nothing else was queued
    await client.disconnect()
    assert [f["seq"] for f in frames] == [2, 3, 4, 5]
    assert [f["chunk"]["data"]["n"] for f in frames] == [2, 3, 4, 5]


async def test_resume_after_retention_sends_a_snapshot_first(settings, copilot_settings):
    settings.COPILOT = {**copilot_settings, "EVENT_LOG_MAX_EVENTS": 5}
    session, token = await owner_with_session()
    client = await open_socket(session, token)
    await client.send_json_to(send_frame(script({"text": "one two three four five six seven eight"})))
    streamed = events_of(await receive_until(client, is_finish))
    await client.disconnect()
    assert len(streamed) > 5

    late = await open_socket(session, token, after_seq=1)
    snapshot_frame = await next_frame(late, timeout=5)
    assert snapshot_frame["type"] == "snapshot"
    snapshot = snapshot_frame["session"]
    assert snapshot == await database_sync_to_async(lambda: session_snapshot(ChatSession.objects.get(pk=session.pk)))()
    assert snapshot["last_seq"] == streamed[-1]["seq"] and snapshot["active_turn"] is None
    assert snapshot["messages"][1]["parts"] == [{"type": "text", "text": "one two three four five six seven eight"}]
    await late.send_json_to({"type": "ping"})
    assert await next_frame(late, timeout=5) == {"type": "pong"}
    await late.disconnect()


async def test_snapshot_plus_events_after_last_seq_equals_what_a_watcher_saw():
    session, token = await owner_with_session()
    watcher = await open_socket(session, token)
    await watcher.send_json_to(send_frame(script({"text": "start", "tools": [wait_tool(0.5), wait_tool(0.2)]},
                                                 {"text": "end"})))
    await receive_until(watcher, lambda f: f.get("type") == "event" and f["chunk"]["type"] == "tool-output-available")
    snapshot = await database_sync_to_async(session_snapshot)(session)
    assert snapshot["active_turn"] is not None
    states = {p["toolCallId"]: p["state"] for p in snapshot["messages"][1]["parts"] if p["type"] == "dynamic-tool"}
    assert sorted(states.values()) == ["input-available", "output-available"]  # pending while its turn runs
    late = await open_socket(session, token, after_seq=snapshot["last_seq"])
    rest = events_of(await receive_until(late, is_finish))
    await receive_until(watcher, is_finish)
    await watcher.disconnect()
    await late.disconnect()
    outputs = {e["chunk"]["toolCallId"] for e in rest if e["chunk"]["type"] == "tool-output-available"}
    assert outputs == {tool_id for tool_id, state in states.items() if state == "input-available"}
    assert rest[0]["seq"] == snapshot["last_seq"] + 1

"""Turn control (PROTOCOL §7) over real websockets to the consumer, with the real SDK, CLI and local model:
liveness, approvals from any device, cancelling one call, queued messages — and their bad input."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from chat.models import ChatSession, ToolCall, ToolCallStatus, Turn, TurnStatus
from chat.selectors import session_snapshot
from copilot_site.asgi import application
from tests.factories import (
    assert_turn_well_formed,
    make_session,
    make_user,
    next_frame,
    script,
    send_frame,
    streamed_text,
    text_tool,
    wait_tool,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_turn_left_running")]


class Device:
    """One browser tab or phone: a socket on the session that has resumed, keeping every frame it got."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.socket = communicator
        self.frames: list[dict] = []

    async def until(self, predicate, *, timeout: float = 30, after: int = 0) -> dict:
        """The first frame from number `after` on that matches, waiting for it."""
        for frame in self.frames[after:]:
            if predicate(frame):
                return frame
        async with asyncio.timeout(timeout):
            while True:
                frame = await next_frame(self.socket, timeout=timeout, keep_liveness=True)
                self.frames.append(frame)
                if predicate(frame):
                    return frame

    async def event(self, chunk_type: str, **fields) -> dict:
        return (await self.until(lambda f: f["type"] == "event" and f["chunk"]["type"] == chunk_type and all(
            f["chunk"].get("data", f["chunk"]).get(k) == v for k, v in fields.items())))["chunk"]

    async def error(self) -> dict:
        return await self.until(lambda f: f["type"] == "error")

    def events(self) -> list[dict]:
        return [f for f in self.frames if f["type"] == "event"]

    def livenesses(self) -> list[dict]:
        return [f for f in self.frames if f["type"] == "liveness"]

    async def send(self, frame: dict) -> None:
        await self.socket.send_json_to(frame)


@pytest.fixture
async def owner():
    user = await database_sync_to_async(make_user)()
    token = await database_sync_to_async(lambda: Token.objects.create(user=user).key)()
    return user, token


@pytest.fixture
async def open_device(owner):
    opened: list[Device] = []

    async def open_on(session, token=None) -> Device:
        communicator = WebsocketCommunicator(application, f"/ws/sessions/{session.id}/",
                                             headers=[(b"authorization", f"Token {token or owner[1]}".encode())])
        assert (await communicator.connect())[0]
        device = Device(communicator)
        await device.send({"type": "resume", "after_seq": 0})
        await device.until(lambda f: f["type"] == "liveness")
        opened.append(device)
        return device

    yield open_on
    for device in opened:
        await device.socket.disconnect()


async def a_session(owner, **fields) -> ChatSession:
    return await database_sync_to_async(lambda: make_session(owner[0]) if not fields else
                                        ChatSession.objects.create(owner=owner[0], title="t", **fields))()


def outputs(device: Device) -> dict[str, dict]:
    return {f["chunk"]["toolCallId"]: f["chunk"] for f in device.events()
            if f["chunk"]["type"] in {"tool-output-available", "tool-output-error"}}


def finished(device: Device) -> list[dict]:
    events = device.events()
    start = max(i for i, e in enumerate(events) if e["chunk"]["type"] == "start")
    return events[start:]


# --- liveness ---

async def test_liveness_says_what_the_turn_does_and_ends_idle(owner, open_device, settings, copilot_settings):
    settings.COPILOT = {**copilot_settings, "STALL_SECONDS": 0.6}
    session = await a_session(owner)
    device = await open_device(session)
    assert device.livenesses()[0]["state"] == "idle"
    await device.send(send_frame(script({"tools": [wait_tool(2)]}, {"text": "done waiting"})))
    call = await device.event("tool-input-available")
    running = await device.until(lambda f: f["type"] == "liveness" and f["state"] == "tools")
    assert running["running_tools"] == [call["toolCallId"]] and running["turn_id"]
    stalled = await device.until(lambda f: f["type"] == "liveness" and f["state"] == "stalled")
    assert stalled["idle_ms"] >= 600 and stalled["running_tools"] == [call["toolCallId"]]
    await device.event("finish")
    last = await device.until(lambda f: f["type"] == "liveness" and f["state"] == "idle" and f is not
                              device.livenesses()[0])
    assert last == {"type": "liveness", "turn_id": None, "state": "idle", "running_tools": [],
                    "pending_approvals": [], "idle_ms": 0}
    states = [f["state"] for f in device.livenesses()]
    assert states.index("tools") < states.index("stalled") and "thinking" in states


async def test_liveness_beats_while_nothing_changes(owner, open_device, settings, copilot_settings):
    settings.COPILOT = {**copilot_settings, "HEARTBEAT_SECONDS": 0.3}
    session = await a_session(owner)
    device = await open_device(session)
    await device.send(send_frame(script({"tools": [wait_tool(1.5)]}, {"text": "ok"})))
    await device.event("finish")
    beats = [f for f in device.livenesses() if f["state"] == "tools"]
    assert len(beats) >= 3  # the same state, told again at every heartbeat
    assert beats[-1]["idle_ms"] > beats[0]["idle_ms"]


async def test_a_device_that_resumes_mid_turn_is_told_the_turn_s_liveness(owner, open_device):
    session = await a_session(owner)
    first = await open_device(session)
    await first.send(send_frame(script({"tools": [wait_tool(1.5)]}, {"text": "ok"})))
    call = await first.event("tool-input-available")
    await first.until(lambda f: f["type"] == "liveness" and f["state"] == "tools")
    late = await open_device(session)
    told = late.livenesses()[0]
    assert told["state"] == "tools" and told["running_tools"] == [call["toolCallId"]]
    await first.event("finish")


# --- approvals ---

async def test_ask_mode_holds_a_call_until_a_device_allows_it_and_every_device_sees_it(owner, open_device):
    session = await a_session(owner, approval_mode="ask")
    phone, laptop = await open_device(session), await open_device(session)
    await phone.send(send_frame(script({"tools": [text_tool("Hi {n}", {"n": "Ada"})]}, {"text": "said hi"})))
    waiting = await laptop.event("data-approval")
    assert waiting["data"]["toolName"] == "mcp__copilot__run_block" and waiting["data"]["expires_at"].endswith("Z")
    kinds = [f["chunk"]["type"] for f in laptop.events()]
    assert kinds.index("tool-input-available") < kinds.index("data-approval")
    pending = await laptop.until(lambda f: f["type"] == "liveness" and f["state"] == "awaiting_approval")
    assert pending["pending_approvals"] == [waiting["data"]["approval_id"]] and pending["running_tools"] == []
    snapshot = await database_sync_to_async(session_snapshot)(session)
    assert snapshot["active_turn"]["pending_approvals"] == [waiting["data"]]
    await laptop.send({"type": "decide", "approval_id": waiting["data"]["approval_id"], "decision": "allow"})
    decided = await phone.event("data-approval-decision")
    assert decided["data"] == {"approval_id": waiting["data"]["approval_id"], "toolCallId": waiting["data"]["toolCallId"],
                               "decision": "allow", "by": "user"}
    await phone.event("finish")
    assert outputs(phone)[waiting["data"]["toolCallId"]].get("output") == {"text": "Hi Ada"}, outputs(phone)
    await phone.send({"type": "decide", "approval_id": waiting["data"]["approval_id"], "decision": "deny"})
    assert (await phone.error())["code"] == "already_decided"
    assert_turn_well_formed(finished(phone))


async def test_a_denied_call_ends_denied_by_the_user_and_the_model_goes_on(owner, open_device, local_model):
    session = await a_session(owner, approval_mode="ask")
    device = await open_device(session)
    await device.send(send_frame(script({"tools": [text_tool("secret")]}, {"text": "went on"})))
    waiting = await device.event("data-approval")
    await device.send({"type": "decide", "approval_id": waiting["data"]["approval_id"], "decision": "deny"})
    await device.event("finish")
    ended = outputs(device)[waiting["data"]["toolCallId"]]
    assert ended["type"] == "tool-output-error" and ended["errorText"].startswith("denied by the user")
    assert streamed_text(finished(device)) == "went on"
    assert "denied by the user" in json.dumps(local_model.model.requests[-1]["messages"])  # the model was told


async def test_no_decision_in_time_denies_by_timeout_and_a_late_decision_is_refused(owner, open_device, settings,
                                                                                   copilot_settings):
    settings.COPILOT = {**copilot_settings, "APPROVAL_TIMEOUT_SECONDS": 0.5}
    session = await a_session(owner, approval_mode="ask")
    device = await open_device(session)
    await device.send(send_frame(script({"tools": [text_tool("late")]}, {"text": "ok"})))
    waiting = await device.event("data-approval")
    decided = await device.event("data-approval-decision")
    assert (decided["data"]["decision"], decided["data"]["by"]) == ("deny", "timeout")
    await device.event("finish")
    await device.send({"type": "decide", "approval_id": waiting["data"]["approval_id"], "decision": "allow"})
    assert (await device.error())["code"] == "already_decided"


async def test_ask_before_tools_holds_only_the_tools_it_names(owner, open_device, settings, copilot_settings):
    settings.COPILOT = {**copilot_settings, "ASK_BEFORE_TOOLS": ["Write"]}
    session = await a_session(owner)
    device = await open_device(session)
    write = {"name": "Write", "input": {"file_path": "a.txt", "content": "x"}}
    await device.send(send_frame(script({"tools": [text_tool("free"), write]}, {"text": "ok"})))
    waiting = await device.event("data-approval")
    assert waiting["data"]["toolName"] == "Write"
    await device.send({"type": "decide", "approval_id": waiting["data"]["approval_id"], "decision": "allow"})
    await device.event("finish")
    assert [f["chunk"]["data"]["toolName"] for f in device.events() if f["chunk"]["type"] == "data-approval"] == ["Write"]


async def test_a_call_the_policy_denies_never_asks(owner, open_device):
    session = await a_session(owner, approval_mode="ask")
    device = await open_device(session)
    await device.send(send_frame(script({"tools": [{"name": "Read", "input": {"file_path": "/etc/passwd"}}]},
                                        {"text": "ok"})))
    await device.event("finish")
    assert not [f for f in device.events() if f["chunk"]["type"] == "data-approval"]
    assert "outside this chat's workspace" in next(iter(outputs(device).values()))["errorText"]


async def test_stop_while_calls_wait_decides_them_by_stop_and_ends_the_turn_once(owner, open_device):
    session = await a_session(owner, approval_mode="ask")
    device = await open_device(session)
    await device.send(send_frame(script({"tools": [text_tool("a"), text_tool("b")]}, {"text": "never"})))
    await device.event("data-approval")
    await device.send({"type": "stop"})
    await device.event("finish")
    events = finished(device)
    assert_turn_well_formed(events)
    decisions = [e["chunk"]["data"] for e in events if e["chunk"]["type"] == "data-approval-decision"]
    waited = [e["chunk"]["data"] for e in events if e["chunk"]["type"] == "data-approval"]
    assert {d["by"] for d in decisions} == {"stop"} and len(decisions) == len(waited) >= 1
    assert all(o["errorText"].startswith("interrupted") for o in outputs(device).values())
    assert events[-2]["chunk"]["data"]["status"] == "stopped"


async def test_cancelling_a_call_that_waits_for_approval(owner, open_device):
    session = await a_session(owner, approval_mode="ask")
    device = await open_device(session)
    await device.send(send_frame(script({"tools": [text_tool("x")]}, {"text": "went on"})))
    waiting = await device.event("data-approval")
    await device.send({"type": "cancel_tool", "toolCallId": waiting["data"]["toolCallId"]})
    decided = await device.event("data-approval-decision")
    assert (decided["data"]["decision"], decided["data"]["by"]) == ("deny", "cancel")
    await device.event("finish")
    assert outputs(device)[waiting["data"]["toolCallId"]]["errorText"].startswith("cancelled by the user")
    assert finished(device)[-2]["chunk"]["data"]["status"] == "completed"


async def test_a_reload_while_a_call_waits_still_shows_it_and_deciding_works(owner, open_device):
    session = await a_session(owner, approval_mode="ask")
    first = await open_device(session)
    await first.send(send_frame(script({"tools": [text_tool("ok")]}, {"text": "fine"})))
    waiting = await first.event("data-approval")
    await first.socket.disconnect()
    reloaded = await open_device(session)  # replays from 0: the data-approval is there again
    assert (await reloaded.event("data-approval"))["data"] == waiting["data"]
    await reloaded.send({"type": "decide", "approval_id": waiting["data"]["approval_id"], "decision": "allow"})
    await reloaded.event("finish")
    assert outputs(reloaded)[waiting["data"]["toolCallId"]]["type"] == "tool-output-available"


async def test_two_devices_deciding_at_once_one_wins(owner, open_device):
    session = await a_session(owner, approval_mode="ask")
    one, two = await open_device(session), await open_device(session)
    await one.send(send_frame(script({"tools": [text_tool("x")]}, {"text": "ok"})))
    waiting = (await one.event("data-approval"))["data"]
    await two.event("data-approval")
    await asyncio.gather(one.send({"type": "decide", "approval_id": waiting["approval_id"], "decision": "allow"}),
                         two.send({"type": "decide", "approval_id": waiting["approval_id"], "decision": "deny"}))
    await one.event("finish")
    decisions = [e for e in one.events() if e["chunk"]["type"] == "data-approval-decision"]
    assert len(decisions) == 1
    # The loser hears `already_decided`, whenever its answer comes (before or after the turn's end).
    waits = [asyncio.ensure_future(device.error()) for device in (one, two)]
    done, pending = await asyncio.wait(waits, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    for wait in pending:
        wait.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    assert [wait.result()["code"] for wait in done] == ["already_decided"]
    winner = one if decisions[0]["chunk"]["data"]["decision"] == "allow" else two
    assert not [f for f in winner.frames if f["type"] == "error"]


@pytest.mark.parametrize("approval_id", ["not-a-uuid", "0f0e7c55-6a33-4c3a-9d59-8f4a4b7e1d10"])
async def test_an_unknown_approval_is_unknown(owner, open_device, approval_id):
    device = await open_device(await a_session(owner))
    await device.send({"type": "decide", "approval_id": approval_id, "decision": "allow"})
    assert (await device.error())["code"] == "unknown_approval"


async def test_another_chat_s_approval_is_unknown_here(owner, open_device):
    theirs = await a_session(owner, approval_mode="ask")
    device = await open_device(theirs)
    await device.send(send_frame(script({"tools": [text_tool("x")]}, {"text": "ok"})))
    waiting = (await device.event("data-approval"))["data"]
    stranger = await database_sync_to_async(make_user)()
    token = await database_sync_to_async(lambda: Token.objects.create(user=stranger).key)()
    elsewhere = await open_device(await database_sync_to_async(make_session)(stranger), token)
    await elsewhere.send({"type": "decide", "approval_id": waiting["approval_id"], "decision": "allow"})
    assert (await elsewhere.error())["code"] == "unknown_approval"
    await device.send({"type": "decide", "approval_id": waiting["approval_id"], "decision": "allow"})
    await device.event("finish")


@pytest.mark.parametrize("frame", [{"type": "decide", "approval_id": 7, "decision": "allow"},
                                   {"type": "decide", "approval_id": "x", "decision": "maybe"},
                                   {"type": "cancel_tool"}, {"type": "cancel_tool", "toolCallId": ["x"]}])
async def test_malformed_control_frames_are_bad_frames(owner, open_device, frame):
    device = await open_device(await a_session(owner))
    await device.send(frame)
    assert (await device.error())["code"] == "bad_frame"


# --- cancelling one call ---

async def test_cancelling_one_of_three_parallel_calls_stops_its_work_and_the_others_run_on(owner, open_device,
                                                                                         local_model):
    session = await a_session(owner)
    device = await open_device(session)
    await device.send(send_frame(script({"tools": [wait_tool(1), wait_tool(30), wait_tool(1.5)]}, {"text": "after"})))
    await device.until(lambda f: f["type"] == "liveness" and len(f["running_tools"]) == 3)
    calls = [f["chunk"] for f in device.events() if f["chunk"]["type"] == "tool-input-available"]
    slow = next(c["toolCallId"] for c in calls if c["input"]["input"]["seconds"] == 30)
    await device.send({"type": "cancel_tool", "toolCallId": slow})
    await device.event("finish")
    ended = outputs(device)
    assert ended[slow]["type"] == "tool-output-error" and ended[slow]["errorText"].startswith("cancelled by the user")
    assert sorted(o["output"]["seconds"] for c, o in ended.items() if c != slow) == [1, 1.5]
    assert finished(device)[-2]["chunk"]["data"]["status"] == "completed"
    sent = json.dumps(local_model.model.requests[-1]["messages"])
    assert "cancelled by the user" in sent  # the model got the error as that call's result
    call = await database_sync_to_async(ToolCall.objects.get)(tool_use_id=slow)
    assert call.status == ToolCallStatus.FAILED and (call.finished_at - call.started_at).total_seconds() < 20


async def test_cancelling_a_call_that_ended_or_never_was_is_not_running(owner, open_device):
    session = await a_session(owner)
    device = await open_device(session)
    await device.send(send_frame(script({"tools": [text_tool("quick")]}, {"text": "ok"})))
    await device.event("finish")
    done = next(iter(outputs(device)))
    await device.send({"type": "cancel_tool", "toolCallId": done})
    assert (await device.error())["code"] == "not_running"
    device.frames.clear()
    await device.send({"type": "cancel_tool", "toolCallId": "toolu_never"})
    assert (await device.error())["code"] == "not_running"


# --- queued messages ---

async def test_a_queued_message_waits_and_starts_when_the_turn_before_it_ends(owner, open_device):
    session = await a_session(owner)
    device = await open_device(session)
    await device.send(send_frame(script({"tools": [wait_tool(3)]}, {"text": "first"})))
    await device.event("tool-input-available")
    queued = send_frame("a follow-up while it works")
    await device.send({**queued, "queue": True})
    ack = await device.until(lambda f: f["type"] == "ack" and f["client_message_id"] == queued["client_message_id"])
    assert ack["queued"] is True
    snapshot = await database_sync_to_async(session_snapshot)(session)
    assert snapshot["queued"] == [{"turn_id": ack["turn_id"], "message_id": ack["message_id"],
                                   "text": "a follow-up while it works"}]
    assert ack["message_id"] not in [m["id"] for m in snapshot["messages"]]  # it joins when its turn starts
    await device.send({**queued, "queue": True})  # the same send again: the same ids
    again = await device.until(lambda f: f["type"] == "ack" and f is not ack, after=len(device.frames))
    assert (again["turn_id"], again["message_id"], again["queued"]) == (ack["turn_id"], ack["message_id"], True)
    await device.until(lambda f: f["type"] == "event" and f["turn_id"] == ack["turn_id"]
                       and f["chunk"]["type"] == "finish")
    turns = [e["turn_id"] for e in device.events() if e["chunk"]["type"] == "start"]
    assert turns[-1] == ack["turn_id"] and len(turns) == 2
    assert_turn_well_formed([e for e in device.events() if e["turn_id"] == ack["turn_id"]])
    snapshot = await database_sync_to_async(session_snapshot)(session)
    assert snapshot["queued"] == [] and ack["message_id"] in [m["id"] for m in snapshot["messages"]]


@pytest.mark.parametrize("ending", ["failed", "stopped"])
async def test_a_queued_turn_starts_whatever_its_predecessor_ended_with(owner, open_device, ending):
    session = await a_session(owner)
    device = await open_device(session)
    first = script({"error": "api_error"}) if ending == "failed" else script({"tools": [wait_tool(30)]})
    await device.send(send_frame(first))
    await device.event("start")
    queued = send_frame(script({"text": "my turn"}))
    await device.send({**queued, "queue": True})
    ack = await device.until(lambda f: f["type"] == "ack" and f.get("queued"))
    if ending == "stopped":
        await device.event("tool-input-available")
        await device.send({"type": "stop"})
    await device.until(lambda f: f["type"] == "event" and f["turn_id"] == ack["turn_id"]
                       and f["chunk"]["type"] == "finish", timeout=60)
    statuses = [e["chunk"]["data"]["status"] for e in device.events() if e["chunk"]["type"] == "data-turn"]
    assert statuses == [ending, "completed"]


async def test_the_queue_has_a_limit_and_without_queue_a_send_is_refused(owner, open_device, settings,
                                                                        copilot_settings):
    settings.COPILOT = {**copilot_settings, "MAX_QUEUED_TURNS": 1}
    session = await a_session(owner)
    device = await open_device(session)
    await device.send(send_frame(script({"tools": [wait_tool(1)]}, {"text": "ok"})))
    await device.event("tool-input-available")
    await device.send(send_frame("not queued"))
    assert (await device.error())["code"] == "turn_running"
    device.frames = [f for f in device.frames if f["type"] != "error"]
    await device.send({**send_frame("one"), "queue": True})
    await device.until(lambda f: f["type"] == "ack" and f.get("queued"))
    await device.send({**send_frame("two"), "queue": True})
    assert (await device.error())["code"] == "queue_full"
    await device.until(lambda f: f["type"] == "event" and f["chunk"]["type"] == "finish"
                       and sum(e["chunk"]["type"] == "finish" for e in device.events()) == 2, timeout=60)


async def test_queue_true_with_nothing_running_is_a_plain_send(owner, open_device):
    device = await open_device(await a_session(owner))
    await device.send({**send_frame(script({"text": "at once"})), "queue": True})
    ack = await device.until(lambda f: f["type"] == "ack")
    assert "queued" not in ack
    await device.event("finish")


async def test_a_turn_reaped_after_its_process_died_lets_the_queued_one_start(owner, open_device, settings,
                                                                             copilot_settings):
    from datetime import timedelta

    from django.utils import timezone

    from chat.engine.reaper import reap_stale_turns
    from chat.models import Message

    session = await a_session(owner)
    device = await open_device(session)

    @database_sync_to_async
    def a_dead_turn_and_a_queued_one():
        asked = Message.objects.create(session=session, position=1, role="user",
                                       parts=[{"type": "text", "index": 0, "text": "lost"}])
        answered = Message.objects.create(session=session, position=2, role="assistant")
        long_ago = timezone.now() - timedelta(hours=1)
        Turn.objects.create(session=session, user_message=asked, assistant_message=answered, process="gone:1")
        Turn.objects.filter(session=session).update(heartbeat_at=long_ago)
        waiting = Message.objects.create(session=session, position=3, role="user", client_message_id=uuid.uuid4(),
                                         parts=[{"type": "text", "index": 0, "text": script({"text": "next"})}])
        reply = Message.objects.create(session=session, position=4, role="assistant")
        return Turn.objects.create(session=session, user_message=waiting, assistant_message=reply,
                                   status=TurnStatus.QUEUED, queued_at=timezone.now())

    queued = await a_dead_turn_and_a_queued_one()
    assert len(await reap_stale_turns()) == 1
    await device.until(lambda f: f["type"] == "event" and f["turn_id"] == str(queued.id)
                       and f["chunk"]["type"] == "finish", timeout=60)
    assert streamed_text([e for e in device.events() if e["turn_id"] == str(queued.id)]) == "next"


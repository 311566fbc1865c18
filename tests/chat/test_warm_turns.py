"""Warm clients (chat.engine.warm): a session's CLI serves its next turn, is started ahead of time, and gives way
when it must — always through the real SDK, the real CLI and the local model."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from chat.engine import observers
from chat.engine.observers import TurnObserver
from chat.engine.registry import begin_turn, running_turns
from chat.events.liveness import liveness_board
from chat.models import Turn, TurnStatus
from chat.workspaces import workspace_for
from copilot_site.asgi import application
from tests.factories import (
    EventWatcher,
    assert_turn_well_formed,
    make_session,
    make_user,
    pid_alive,
    run_turn,
    script,
    streamed_text,
    text_tool,
    wait_tool,
    wait_until_gone,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_turn_left_running")]


@database_sync_to_async
def new_session(owner=None):
    return make_session(owner or make_user())


def warm_pid(session) -> int | None:
    client = running_turns.pool.clients.get(str(session.id))
    return client.cli_pid if client is not None and not client.closed else None


async def test_the_next_turn_of_a_session_reuses_its_cli_and_the_model_sees_the_whole_conversation(local_model):
    session = await new_session()
    await run_turn(session, script({"text": "first answer"}))
    first_pid = warm_pid(session)
    assert first_pid and pid_alive(first_pid)
    before = len(local_model.model.requests)
    events, turn, _ = await run_turn(session, script({"text": "second answer"}))
    assert turn.status == TurnStatus.COMPLETED and streamed_text(events) == "second answer"
    assert warm_pid(session) == first_pid  # the same CLI process served both turns
    conversation = json.dumps(local_model.model.requests[before]["messages"])
    assert "first answer" in conversation  # it continued the conversation, not a new one


async def test_no_state_of_one_turn_reaches_the_next(settings, copilot_settings):
    settings.COPILOT = {**copilot_settings, "MAX_TOOL_CALLS_PER_TURN": 2}
    session = await new_session()
    events, _, _ = await run_turn(session, script({"tools": [text_tool("a"), text_tool("b"), text_tool("c")]},
                                                  {"text": "capped"}))
    refused = [e for e in events if e["chunk"]["type"] == "tool-output-error"]
    assert len(refused) == 1 and "2 tool calls" in refused[0]["chunk"]["errorText"]
    pid = warm_pid(session)
    events, turn, calls = await run_turn(session, script({"tools": [text_tool("x"), text_tool("y")]}, {"text": "ok"}))
    assert warm_pid(session) == pid  # same CLI, fresh limits
    assert [c.status for c in calls] == ["completed", "completed"] and turn.status == TurnStatus.COMPLETED


async def test_two_sessions_never_share_a_client_nor_a_workspace():
    owner = await database_sync_to_async(make_user)()
    first, second = await new_session(owner), await new_session(owner)

    def write(name):
        return {"name": "Write", "input": {"file_path": "mine.txt", "content": name}}

    await asyncio.gather(run_turn(first, script({"tools": [write("first")]}, {"text": "done"})),
                         run_turn(second, script({"tools": [write("second")]}, {"text": "done"})))
    assert warm_pid(first) and warm_pid(second) and warm_pid(first) != warm_pid(second)
    assert (workspace_for(first.id) / "mine.txt").read_text() == "first"
    assert (workspace_for(second.id) / "mine.txt").read_text() == "second"


async def test_opening_a_chat_starts_its_cli_before_the_first_message():
    session = await new_session()
    token = await database_sync_to_async(lambda: Token.objects.create(user=session.owner).key)()
    socket = WebsocketCommunicator(application, f"/ws/sessions/{session.id}/",
                                   headers=[(b"authorization", f"Token {token}".encode())])
    assert (await socket.connect())[0]
    await socket.send_json_to({"type": "resume", "after_seq": 0})
    liveness = await socket.receive_json_from(timeout=10)
    assert liveness == {"type": "liveness", "turn_id": None, "state": "idle", "running_tools": [],
                        "pending_approvals": [], "idle_ms": 0}
    client = running_turns.pool.clients[str(session.id)]
    await asyncio.wait_for(client.ready, 30)  # started by the resume: ready before anything was sent
    prewarmed = client.cli_pid
    events, turn, _ = await run_turn(session, script({"text": "already warm"}))
    assert turn.status == TurnStatus.COMPLETED and warm_pid(session) == prewarmed
    await socket.disconnect()


async def test_a_warm_client_gives_way_when_room_is_needed(settings, copilot_settings):
    settings.COPILOT = {**copilot_settings, "MAX_WARM_CLIENTS": 1}
    first, second = await new_session(), await new_session()
    await run_turn(first, script({"text": "one"}))
    evicted = warm_pid(first)
    events, turn, _ = await run_turn(second, script({"text": "two"}))
    assert turn.status == TurnStatus.COMPLETED
    await wait_until_gone(evicted)  # the least recently used idle CLI was closed to make room
    assert warm_pid(first) is None and warm_pid(second) not in (None, evicted)


async def test_a_cli_killed_between_turns_is_noticed_and_the_next_turn_starts_cold():
    session = await new_session()
    await run_turn(session, script({"text": "before"}))
    dead = warm_pid(session)
    os.kill(dead, signal.SIGKILL)
    await wait_until_gone(dead)
    events, turn, _ = await run_turn(session, script({"text": "after the crash"}))
    assert_turn_well_formed(events)
    assert turn.status == TurnStatus.COMPLETED and streamed_text(events) == "after the crash"
    assert warm_pid(session) not in (None, dead)


async def test_a_turn_run_elsewhere_makes_the_warm_client_stale(local_model):
    session = await new_session()
    await run_turn(session, script({"text": "here"}))
    stale = warm_pid(session)

    @database_sync_to_async
    def a_turn_another_process_ran():
        # As if the session's last turn had run in another process: the warm CLI has not seen it.
        from django.utils import timezone

        from chat.models import Message
        asked = Message.objects.create(session=session, position=10, role="user",
                                       parts=[{"type": "text", "index": 0, "text": "elsewhere"}])
        answered = Message.objects.create(session=session, position=11, role="assistant")
        Turn.objects.create(session=session, user_message=asked, assistant_message=answered, process="elsewhere:1",
                            status=TurnStatus.COMPLETED, finished_at=timezone.now())

    await a_turn_another_process_ran()
    events, turn, _ = await run_turn(session, script({"text": "resumed exactly"}))
    assert turn.status == TurnStatus.COMPLETED
    await wait_until_gone(stale)
    assert warm_pid(session) not in (None, stale)


class CapacityWaits(TurnObserver):
    def __init__(self) -> None:
        self.started = asyncio.Event()

    def wait_started(self, turn, *, kind, key):
        if kind == "capacity":
            self.started.set()


async def test_a_turn_waits_for_capacity_as_starting_and_then_completes(settings, copilot_settings):
    settings.COPILOT = {**copilot_settings, "MAX_CONCURRENT_TURNS": 1}
    busy, waiting = await new_session(), await new_session()
    waits = CapacityWaits()
    observers.register(waits)
    async with EventWatcher(busy.id) as busy_watch, EventWatcher(waiting.id) as waiting_watch:
        await begin_turn(session=busy, text=script({"tools": [wait_tool(1.5)]}, {"text": "first"}),
                         client_message_id=uuid.uuid4())
        await busy_watch.until(lambda c: c["type"] == "tool-input-available")
        queued = await begin_turn(session=waiting, text=script({"text": "second"}), client_message_id=uuid.uuid4())
        await asyncio.wait_for(waits.started.wait(), 10)
        observers.unregister(waits)
        liveness = await liveness_board.current(str(waiting.id))
        assert liveness["state"] == "starting" and liveness["turn_id"] == str(queued.turn.id)
        first = await busy_watch.until_finish()
        second = await waiting_watch.until_finish()
    assert first[-2]["chunk"]["data"]["status"] == second[-2]["chunk"]["data"]["status"] == "completed"
    assert streamed_text(second) == "second"
    ran_first, ran_second = await database_sync_to_async(lambda: (
        Turn.objects.get(pk=first[0]["turn_id"]), Turn.objects.get(pk=queued.turn.id)))()
    assert ran_second.first_token_at >= ran_first.finished_at  # it waited for the slot, then ran

"""Turns outliving their process, and conversations continuing across turns and processes."""

from __future__ import annotations

import shutil
import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from claude_agent_sdk.testing import run_session_store_conformance
from django.utils import timezone

from chat.engine.reaper import reap_stale_turns
from chat.engine.registry import begin_turn, running_turns
from chat.engine.session_store import DjangoSessionStore
from chat.models import ChatSession, Message, ToolCall, ToolCallStatus, Turn, TurnStatus
from tests.factories import EventWatcher, assert_turn_well_formed, make_session, make_user, script

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_turn_left_running")]


@database_sync_to_async
def turn_left_by_a_dead_process(*, heartbeat_age_seconds: float):
    session = make_session(make_user())
    user_message = Message.objects.create(session=session, position=1, role="user",
                                          parts=[{"type": "text", "index": 0, "text": "hi"}])
    answer = Message.objects.create(session=session, position=2, role="assistant")
    turn = Turn.objects.create(session=session, user_message=user_message, assistant_message=answer,
                               process="gone-host:1")
    Turn.objects.filter(pk=turn.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age_seconds))
    ToolCall.objects.create(turn=turn, message=answer, tool_use_id="toolu_dead", name="mcp__copilot__run_block",
                            input={}, input_seq=3)
    return session, turn


async def test_reaper_interrupts_a_stale_turn_and_tells_watchers(copilot_settings):
    session, turn = await turn_left_by_a_dead_process(heartbeat_age_seconds=copilot_settings["STALE_TURN_SECONDS"] + 5)
    async with EventWatcher(session.id) as watcher:
        assert await reap_stale_turns() == [str(turn.id)]
        events = await watcher.until_finish(timeout=5)
    types = [e["chunk"]["type"] for e in events]
    assert types == ["tool-output-error", "error", "data-turn", "finish"]
    assert events[0]["seq"] == 4  # continues after the newest seq saved in the database
    assert events[2]["chunk"]["data"] == {"turn_id": str(turn.id), "status": "interrupted"}
    reaped = await database_sync_to_async(Turn.objects.get)(pk=turn.pk)
    call = await database_sync_to_async(ToolCall.objects.get)(turn=turn)
    assert reaped.status == TurnStatus.INTERRUPTED and reaped.error
    assert call.status == ToolCallStatus.INTERRUPTED
    assert await reap_stale_turns() == []  # only once


async def test_reaper_leaves_fresh_turns_alone():
    _, turn = await turn_left_by_a_dead_process(heartbeat_age_seconds=1)
    assert await reap_stale_turns() == []
    assert (await database_sync_to_async(Turn.objects.get)(pk=turn.pk)).status == TurnStatus.RUNNING


async def test_session_store_conformance():
    await run_session_store_conformance(lambda: DjangoSessionStore(namespace=uuid.uuid4().hex))


async def test_the_next_turn_remembers_the_conversation_even_without_the_cli_home(local_model, copilot_settings):
    session = await database_sync_to_async(lambda: make_session(make_user()))()
    async with EventWatcher(session.id) as watcher:
        await begin_turn(session=session, text="my secret word is pelican", client_message_id=uuid.uuid4())
        assert_turn_well_formed(await watcher.until_finish())
    # Another process on another machine has neither this CLI (kept warm here) nor its files: only the database.
    await running_turns.pool.close_all()
    shutil.rmtree(copilot_settings["CLI_HOME_DIR"])
    session = await database_sync_to_async(ChatSession.objects.get)(pk=session.pk)
    assert session.sdk_session_id
    requests_before = len(local_model.model.requests)
    async with EventWatcher(session.id) as watcher:
        await begin_turn(session=session, text=script({"text": "I remember."}), client_message_id=uuid.uuid4())
        events = await watcher.until_finish()
    assert events[-2]["chunk"]["data"]["status"] == "completed"
    conversation = str(local_model.model.requests[requests_before:][-1]["messages"])
    assert "my secret word is pelican" in conversation

"""What a server process does on SIGTERM, called directly (a real daphne gets SIGTERM in test_turn_daphne.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.db import database_sync_to_async

from chat import lifecycle
from chat.engine.registry import begin_turn, running_turns
from chat.events.notices import notice_relay
from tests.factories import EventWatcher, make_session, make_user, script, wait_tool


@pytest.mark.django_db(transaction=True)
async def test_shutdown_stops_the_background_tasks_and_the_notice_relay(settings, monkeypatch):
    settings.COPILOT = {**settings.COPILOT, "REDIS_URL": None, "SHUTDOWN_DRAIN_SECONDS": 0}
    monkeypatch.setattr(lifecycle, "_draining", False)
    reaper = asyncio.create_task(asyncio.Event().wait(), name="reaper stand-in")
    monkeypatch.setattr(lifecycle, "_background", [reaper])
    notice_relay.start()
    await asyncio.wait_for(notice_relay.listening.wait(), timeout=10)  # it listens for workers' notices

    await lifecycle.stop_everything()

    assert reaper.cancelled()
    assert not notice_relay.running


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_turn_left_running")
async def test_shutdown_drains_first_then_ends_the_running_turns(settings, monkeypatch):
    settings.COPILOT = {**settings.COPILOT, "REDIS_URL": None, "SHUTDOWN_DRAIN_SECONDS": 0.5}
    monkeypatch.setattr(lifecycle, "_background", [])
    monkeypatch.setattr(lifecycle, "_draining", False)
    session = await database_sync_to_async(lambda: make_session(make_user()))()
    async with EventWatcher(session.id) as watcher:
        await begin_turn(session=session, text=script({"tools": [wait_tool(30)]}), client_message_id=uuid.uuid4())
        await watcher.until(lambda chunk: chunk["type"] == "tool-input-available")
        turn = running_turns.task_for(str(session.id))
        assert not lifecycle.draining()

        stopping = asyncio.create_task(lifecycle.stop_everything())
        await asyncio.sleep(0)  # let it begin
        assert lifecycle.draining()  # readiness says so from the start…
        done, _ = await asyncio.wait({turn}, timeout=0.3)
        assert not done  # …while the turn runs on through the drain
        await asyncio.wait_for(stopping, timeout=20)
        events = await watcher.until_finish(timeout=5)
    assert turn.done()
    assert events[-2]["chunk"]["data"]["status"] == "interrupted"

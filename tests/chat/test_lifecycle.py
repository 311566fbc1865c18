"""What a server process does on SIGTERM, called directly (a real daphne gets SIGTERM in test_turn_daphne.py)."""

from __future__ import annotations

import asyncio

import pytest

from chat import lifecycle
from chat.events.notices import notice_relay


@pytest.mark.django_db(transaction=True)
async def test_shutdown_stops_the_background_tasks_and_the_notice_relay(settings, monkeypatch):
    settings.COPILOT = {**settings.COPILOT, "REDIS_URL": None}
    reaper = asyncio.create_task(asyncio.Event().wait(), name="reaper stand-in")
    monkeypatch.setattr(lifecycle, "_background", [reaper])
    notice_relay.start()
    await asyncio.wait_for(notice_relay.listening.wait(), timeout=10)  # it listens for workers' notices

    await lifecycle.stop_everything()

    assert reaper.cancelled()
    assert not notice_relay.running

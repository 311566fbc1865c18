"""What a server process does on SIGTERM, called directly (a real daphne gets SIGTERM in test_turn_daphne.py)."""

from __future__ import annotations

import asyncio

import pytest

from agents.reports import report_relay
from chat import lifecycle


@pytest.mark.django_db(transaction=True)
async def test_shutdown_stops_the_background_tasks_and_the_report_relay(settings, monkeypatch):
    settings.COPILOT = {**settings.COPILOT, "REDIS_URL": None, "REPORT_RELAY_SECONDS": 0.05}
    relay_passes = asyncio.Event()

    async def work_pending() -> bool:  # keeps the relay looking, as while a chat's agent run is unfinished
        relay_passes.set()
        return True

    monkeypatch.setattr("agents.reports.background_work_pending", work_pending)
    reaper = asyncio.create_task(asyncio.Event().wait(), name="reaper stand-in")
    monkeypatch.setattr(lifecycle, "_background", [reaper])
    report_relay.ensure_running()
    await relay_passes.wait()

    await lifecycle.stop_everything()

    assert reaper.cancelled()
    assert not report_relay.running

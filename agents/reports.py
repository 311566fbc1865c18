"""Background reports (PROTOCOL §2 "Events outside turns", §6): what a chat session hears when work it asked for ends.

A report is saved in the same transaction as the final state it reports (agents.actions), then appended to the
session's event log with `turn_id: null`, and its seq saved with it, inside the log's lock like every durable
write. Who appends it: with a shared event log (REDIS_URL) the process that saved it, worker or web; without
one the log lives in the web process, so a worker leaves its reports to that process's `report_relay`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

from channels.db import database_sync_to_async

from agents.models import Agent, AgentReport, AgentRun, AgentStatus, ReportKind, RunStatus
from chat.conf import copilot_setting
from chat.events import chunks
from chat.events.log import get_event_log

logger = logging.getLogger(__name__)

_worker_process = False


def leave_reports_to_the_web_process() -> None:
    """Called once by a worker process: without a shared log, its own would reach nobody and could reuse seqs."""
    global _worker_process
    _worker_process = True


def delivers_here() -> bool:
    return bool(copilot_setting("REDIS_URL")) or not _worker_process


def run_report_payload(*, run_id: Any, agent_id: Any, status: str, outputs: Any) -> dict[str, Any]:
    return {"run_id": str(run_id), "agent_id": str(agent_id), "status": status, "outputs": outputs or {}}


def build_report_payload(*, agent_id: Any, name: str, status: str, error: str = "") -> dict[str, Any]:
    return {"agent_id": str(agent_id), "name": name, "status": status, "error": error}


def save_run_report(*, session_id: Any, run_id: Any, agent_id: Any, status: str, outputs: Any) -> AgentReport:
    """Inside the transaction that ends the run."""
    return AgentReport.objects.create(
        session_id=session_id, kind=ReportKind.RUN, agent_id=agent_id, run_id=run_id,
        payload=run_report_payload(run_id=run_id, agent_id=agent_id, status=status, outputs=outputs))


def save_build_report(*, session_id: Any, agent_id: Any, name: str, status: str, error: str = "") -> AgentReport:
    """Inside the transaction that ends the build."""
    return AgentReport.objects.create(
        session_id=session_id, kind=ReportKind.BUILD, agent_id=agent_id,
        payload=build_report_payload(agent_id=agent_id, name=name, status=status, error=error))


@database_sync_to_async
def _record_seq(report_id: int, seq: int) -> bool:
    return AgentReport.objects.filter(pk=report_id, seq__isnull=True).update(seq=seq) == 1


async def deliver_report(report: AgentReport) -> bool:
    """Append the report's event to its session's log; False when it had been appended already."""
    chunk = chunks.data(report.kind, report.payload)
    appended = await get_event_log().append(str(report.session_id), None, [chunk],
                                            lambda seq: _record_seq(report.pk, seq))
    if appended:
        logger.info("session=%s %s report appended as seq %s", report.session_id, report.kind, appended[0].seq)
    return bool(appended)


async def deliver_if_mine(report: AgentReport | None) -> None:
    """Append a report just saved, when this process appends reports; a failure leaves it for a later try."""
    if report is None or not delivers_here():
        return
    try:
        await deliver_report(report)
    except Exception:
        logger.exception("session=%s could not append the %s report %s; it stays saved", report.session_id,
                         report.kind, report.pk)


@database_sync_to_async
def _undelivered(limit: int = 100) -> list[AgentReport]:
    return list(AgentReport.objects.filter(seq__isnull=True).order_by("created_at", "id")[:limit])


async def deliver_pending_reports() -> int:
    """Append every saved report not yet appended, oldest first; returns how many this call appended."""
    appended = 0
    for report in await _undelivered():
        appended += await deliver_report(report)
    return appended


@database_sync_to_async
def background_work_pending() -> bool:
    """Is a run or build that a chat session asked for still unfinished?"""
    return (AgentRun.objects.filter(session__isnull=False, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).exists()
            or Agent.objects.filter(status=AgentStatus.BUILDING, build_session__isnull=False).exists())


class ReportRelay:
    """In a web process whose event log is its own (no REDIS_URL): appends the reports workers saved.

    Workers are other processes and, without Redis, nothing tells this one when they save a report, so the
    relay looks every REPORT_RELAY_SECONDS, and only while chat-requested work is unfinished or a report unsent.
    """

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        """Start the relay on the running event loop unless it runs already (a no-op with a shared log)."""
        if copilot_setting("REDIS_URL") or not delivers_here():
            return
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._task.get_loop() is loop:
            return
        # A fresh context: a relay started from a request must not keep that request's executor.
        self._task = loop.create_task(self._relay(), name="report relay", context=contextvars.Context())

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _relay(self) -> None:
        while True:
            try:
                await deliver_pending_reports()
                # Work and its report end in one transaction: once no work is pending, one more pass finds
                # any report saved since the first.
                if not await background_work_pending() and not await deliver_pending_reports():
                    return
            except Exception:
                logger.exception("appending background reports failed; trying again")
            await asyncio.sleep(copilot_setting("REPORT_RELAY_SECONDS"))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


report_relay = ReportRelay()

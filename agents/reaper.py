"""Ends runs whose worker died: their heartbeat went stale, so nobody will finish them.

It runs in every worker (agents.management.commands.agents_worker): a worker that starts, or the other workers
of a deployment, end what a dead one left. Each ending is conditional, so two reapers never end one run twice.
A run whose task a worker took but never started (it died in between) is queued again instead: nothing of it ran.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from channels.db import database_sync_to_async
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from agents.actions import do_finish_run, do_requeue_run
from agents.executor import running_here
from agents.models import AgentRun, RunStatus
from core.conf import copilot_setting

logger = logging.getLogger(__name__)

WORKER_DIED = "the worker running it stopped (no heartbeat for {seconds:g}s)"


@database_sync_to_async
def _end_stale(stale_after_seconds: float, running_here: set) -> list[str]:
    """End what is stale (but the runs in `running_here`); returns the runs ended."""
    cutoff = timezone.now() - timedelta(seconds=stale_after_seconds)
    ended = []
    stale_runs = AgentRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff).exclude(
        pk__in=running_here).values_list("id", "process", "task_id")
    for run_id, process, task_id in stale_runs:
        if do_finish_run(run_id=run_id, status=RunStatus.FAILED, stale_before=cutoff,
                         error=WORKER_DIED.format(seconds=stale_after_seconds)):
            logger.warning("run=%s reaped: heartbeat older than %ss (worker %s)", run_id, stale_after_seconds, process)
            _fail_task_result(task_id, f"worker {process} stopped while running this task")
            ended.append(f"run {run_id}")
    _requeue_lost_claims(cutoff)
    return ended


def _requeue_lost_claims(cutoff) -> None:
    """Queue again the runs whose task a worker took before the cutoff but never started: it died in between."""
    claimed = DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING, started_at__lt=cutoff).values_list(
        "id", flat=True)
    lost = AgentRun.objects.filter(status=RunStatus.QUEUED, task_id__in=[str(task_id) for task_id in claimed])
    for run_id, task_id in lost.values_list("id", "task_id"):
        if do_requeue_run(run_id=run_id, lost_task_id=task_id):
            logger.warning("run=%s queued again: the worker that took task %s stopped before starting it", run_id,
                           task_id)
            _fail_task_result(task_id, "the worker that took this task stopped before starting its run")


class WorkerDied(Exception):
    """Recorded on the tasks framework's result of a run whose worker died, so it does not show as running."""


def _fail_task_result(task_id: str, why: str) -> None:
    result = DBTaskResult.objects.filter(pk=task_id, status=TaskResultStatus.RUNNING).first() if task_id else None
    if result is not None:
        result.set_failed(WorkerDied(why))


async def reap_stale_work() -> list[str]:
    """End every stale run (not the runs this process executes); returns what was ended."""
    return await _end_stale(copilot_setting("STALE_RUN_SECONDS"), set(running_here))


async def reap_periodically() -> None:
    """Reap at start-up, then every quarter of the stale period: a dead run ends within 1¼ stale periods."""
    while True:
        try:
            await reap_stale_work()
        except Exception:
            logger.exception("reaping stale agent runs failed; trying again later")
        await asyncio.sleep(copilot_setting("STALE_RUN_SECONDS") / 4)

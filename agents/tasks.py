"""Background tasks (django.tasks, run by the database worker): thin wrappers around the executor.

They import what they call inside their bodies: agents.actions enqueues them, so it imports this module first.
"""

from __future__ import annotations

import uuid

from django.tasks import task

QUEUE = "agents"
# core.broadcast topics: something was queued (idle workers wake), a run was cancelled (its worker stops it).
WORK_QUEUED = "agents.work-queued"
RUN_CANCELLED = "agents.run-cancelled"


@task(queue_name=QUEUE)
def run_agent(run_id: str) -> str | None:
    """Execute a queued run on the worker's background loop; returns the status it ended with."""
    from agents.executor import execute_run
    from agents.worker import background_loop

    return background_loop().run(execute_run(uuid.UUID(run_id)), interruptible=True)

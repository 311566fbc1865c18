"""`manage.py agents_worker`: the background worker for agent runs and builds.

It is django-tasks-db's database worker (`db_worker`) on the `agents` queue, plus what agents need around it:
the reaper of runs whose worker died, one long-lived event loop for the runs, and a shutdown that ends the
run in progress as failed (and reports it) instead of leaving it to the reaper. A second signal exits at once.
"""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from django.core.management.base import BaseCommand
from django_tasks_db.management.commands.db_worker import Worker

from agents.reaper import reap_periodically
from agents.reports import leave_reports_to_the_web_process
from agents.tasks import QUEUE
from agents.worker import background_loop
from chat.actions.turns import PROCESS_NAME
from chat.conf import copilot_setting

logger = logging.getLogger(__name__)


class AgentsWorker(Worker):
    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        if not self.running or not self.running_task:
            super().shutdown(signum, frame)  # idle: exit now; a second signal: exit now
            return
        logger.warning("received %s: ending the run in progress, then stopping", signal.strsignal(signum))
        self.running = False
        background_loop().interrupt_runs()


class Command(BaseCommand):
    help = "Run the background worker of agent runs and builds (the database task worker, with a reaper)."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=None,
                            help="seconds between polls of an empty queue (default: the WORKER_POLL_SECONDS setting)")
        parser.add_argument("--max-tasks", type=int, default=None, help="exit after this many tasks")

    def handle(self, *args, interval: float | None, max_tasks: int | None, **options):
        leave_reports_to_the_web_process()
        loop = background_loop()
        reaper = loop.start(reap_periodically())
        worker = AgentsWorker(queue_names=[QUEUE], interval=interval or copilot_setting("WORKER_POLL_SECONDS"),
                              batch=False, backend_name="default", startup_delay=False, max_tasks=max_tasks,
                              worker_id=PROCESS_NAME[-64:], excluded_queue_names=[])
        worker.configure_signals()
        logger.info("agents worker %s started on queue %r", PROCESS_NAME, QUEUE)
        try:
            worker.run()
        finally:
            reaper.cancel()
            loop.stop()
            logger.info("agents worker %s stopped", PROCESS_NAME)
        sys.stdout.flush()

"""`manage.py agents_worker`: the background worker for agent runs and schedules.

django-tasks-db's database worker on the `agents` queue, plus what agents need around it: it wakes as soon as
work is queued (core.broadcast) and otherwise looks at the queue at most every WORKER_POLL_SECONDS; the
reaper of runs whose worker died; the scheduler (agents.schedules); one long-lived event loop for the runs; and
a shutdown that ends the run in progress as failed (and reports it) instead of leaving it to the reaper. A second
signal exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from types import FrameType

from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections, connection
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from agents.reaper import reap_periodically
from agents.schedules import schedule_periodically
from agents.tasks import QUEUE, WORK_QUEUED
from agents.worker import background_loop
from chat.events.notices import leave_notices_to_the_web_process
from core import broadcast
from core.conf import copilot_setting
from core.process import PROCESS_NAME

logger = logging.getLogger(__name__)

LISTEN_AGAIN_SECONDS = 2


class AgentsWorker(Worker):
    def __init__(self, *, wakeup: threading.Event, **options) -> None:
        super().__init__(**options)
        self.wakeup = wakeup

    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        if not self.running or not self.running_task:
            super().shutdown(signum, frame)  # idle: exit now; a second signal: exit now
            return
        logger.warning("received %s: ending the run in progress, then stopping", signal.strsignal(signum))
        self.running = False
        background_loop().interrupt_runs()

    def claim_next(self) -> DBTaskResult | None:
        """The oldest ready task of our queue, claimed for this worker in one transaction; None when there is none."""
        tasks = DBTaskResult.objects.ready().filter(backend_name=self.backend_name, queue_name__in=self.queue_names)
        try:
            with exclusive_transaction(tasks.db):
                task_result = tasks.get_locked()
                if task_result is not None:
                    task_result.claim(self.worker_id)
                return task_result
        except DatabaseError as exc:
            if not is_locked_database_exception(exc):
                logger.warning("looking at the queue failed (%s); trying again", exc)
                connection.close()  # a fresh connection next time: the database may have restarted
            return None

    def run(self) -> None:
        logger.info("agents worker %s started on queue %r", self.worker_id, QUEUE)
        while self.running:
            self.wakeup.clear()  # before looking: work queued from now on wakes the wait below
            task_result = self.claim_next()
            if task_result is not None:
                self.run_task(task_result)
                close_old_connections()  # as Django does after a request
                if self.max_tasks is not None and self._run_tasks >= self.max_tasks:
                    return
                continue
            self.wakeup.wait(self.interval)


async def hear_queued_work(wakeup: threading.Event, listening: threading.Event) -> None:
    """Wake the worker whenever work is announced; listening again after a lost connection."""
    while True:
        try:
            async with broadcast.listen(WORK_QUEUED) as inbox:
                listening.set()
                wakeup.set()  # look once more: work may have been queued while nobody listened
                while True:
                    await inbox.get()
                    wakeup.set()
        except Exception:
            logger.warning("lost the announcements of queued work; listening again shortly", exc_info=True)
            await asyncio.sleep(LISTEN_AGAIN_SECONDS)


class Command(BaseCommand):
    help = "Run the background worker of agent runs (the database task worker, with a reaper and the scheduler)."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=None,
                            help="the longest wait between looks at the queue when no work is announced "
                                 "(default: the WORKER_POLL_SECONDS setting)")
        parser.add_argument("--max-tasks", type=int, default=None, help="exit after this many tasks")

    def handle(self, *args, interval: float | None, max_tasks: int | None, **options):
        leave_notices_to_the_web_process()
        loop = background_loop()
        reaper = loop.start(reap_periodically())
        scheduler = loop.start(schedule_periodically())
        wakeup, listening = threading.Event(), threading.Event()
        listener = loop.start(hear_queued_work(wakeup, listening))
        if not listening.wait(timeout=10):
            logger.warning("not hearing announcements of queued work; looking at the queue on a timer only")
        worker = AgentsWorker(wakeup=wakeup, queue_names=[QUEUE],
                              interval=interval or copilot_setting("WORKER_POLL_SECONDS"), batch=False,
                              backend_name="default", startup_delay=False, max_tasks=max_tasks,
                              worker_id=PROCESS_NAME[-64:], excluded_queue_names=[])
        worker.configure_signals()
        try:
            worker.run()
        finally:
            for task in (reaper, scheduler, listener):
                task.cancel()
            loop.stop()
            logger.info("agents worker %s stopped", PROCESS_NAME)
        sys.stdout.flush()


"""An idle worker costs the database almost nothing, and queued work still starts at once: it is woken, not found
by a poll (core.broadcast: PostgreSQL LISTEN/NOTIFY, Redis, or datagrams on one machine)."""

from __future__ import annotations

import re
import time

import pytest

from agents.actions import do_cancel_run, do_create_agent, do_enqueue_run
from agents.models import AgentRunNode, NodeStatus, RunStatus
from tests.agents.conftest import LONG_WAIT, greeting_pipeline, wait_for, wait_for_run
from tests.factories import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

IDLE_WINDOW_SECONDS = 10
# Django logs each statement it sends as "(0.001) SELECT …" (with DEBUG on, at DEBUG level).
STATEMENT = re.compile(r"django\.db\.backends \(\d+\.\d+\) ")


@pytest.fixture
def counted_worker(start_worker):
    """A worker that logs every statement it sends to the database, idle: it has looked at its empty queue.

    Its heartbeat is slow, so a cancel it notices is one it heard."""
    worker = start_worker(DJANGO_DEBUG="1", COPILOT_SQL_LOG_LEVEL="DEBUG", COPILOT_RUN_HEARTBEAT_SECONDS="10")
    wait_for(worker.output, lambda log: "started on queue" in log and CLAIM in log, what="the worker's first look")
    return worker


CLAIM = 'FROM "django_tasks_database_dbtaskresult"'


def statements(log: str) -> int:
    return len(STATEMENT.findall(log))


def test_an_idle_worker_makes_at_most_one_query_a_second(counted_worker):
    before = statements(counted_worker.output())
    time.sleep(IDLE_WINDOW_SECONDS)  # the measure is what happens in this much time
    made = statements(counted_worker.output()) - before
    assert made <= IDLE_WINDOW_SECONDS, f"{made} statements in {IDLE_WINDOW_SECONDS} s of idling"


def test_a_run_enqueued_on_an_idle_worker_starts_within_half_a_second(counted_worker):
    agent = do_create_agent(owner_id=make_user().pk, name="greeter", graph=greeting_pipeline())
    run = wait_for_run(do_enqueue_run(agent=agent).id, timeout=30)
    assert run.status == RunStatus.COMPLETED
    waited = (run.started_at - run.queued_at).total_seconds()
    assert waited < 0.5, f"the run waited {waited:.2f} s for the worker"


def test_a_cancel_reaches_the_running_run_at_once(counted_worker):
    agent = do_create_agent(owner_id=make_user().pk, name="long", graph=LONG_WAIT)
    run = do_enqueue_run(agent=agent)
    node = wait_for(lambda: AgentRunNode.objects.get(run=run), lambda n: n.status == NodeStatus.RUNNING)
    cancelled = do_cancel_run(run=run)
    assert cancelled.status == RunStatus.CANCELLED
    log = wait_for(counted_worker.output, lambda text: f"run={run.id} was cancelled: stopping its nodes" in text,
                   timeout=10, what="the worker hearing the cancel")
    assert node.started_at is not None and "stopping its nodes" in log

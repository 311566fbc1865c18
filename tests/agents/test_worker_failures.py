"""Workers that stop or die in the middle of a run: the run ends failed, by the worker itself or by a reaper.

Each test starts its own workers (no worker of another test may take its run).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from agents.executor import WORKER_STOPPED
from agents.models import AgentRunNode, NodeStatus, RunStatus
from tests.agents.conftest import LONG_WAIT, create_agent, start_run, wait_for, wait_for_run, worker_pid

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_a_worker_asked_to_stop_ends_its_run_as_failed(start_worker, api):
    worker = start_worker()
    run_id = start_run(api, create_agent(api, LONG_WAIT))
    wait_for(lambda: AgentRunNode.objects.get(run_id=run_id, node_id="long").status,
             lambda status: status == NodeStatus.RUNNING)
    worker.process.terminate()
    assert worker.process.wait(timeout=15) == 0
    run = wait_for_run(run_id, timeout=1)
    assert run.status == RunStatus.FAILED and run.error == WORKER_STOPPED
    assert AgentRunNode.objects.get(run_id=run_id, node_id="long").status == NodeStatus.FAILED


def test_a_killed_worker_leaves_a_run_that_is_marked_failed_within_the_stale_timeout(start_worker, api):
    stale = 3.0
    workers = [start_worker(COPILOT_STALE_RUN_SECONDS=str(stale)) for _ in range(2)]
    run_id = start_run(api, create_agent(api, LONG_WAIT))
    wait_for(lambda: AgentRunNode.objects.get(run_id=run_id, node_id="long").status,
             lambda status: status == NodeStatus.RUNNING)
    running = wait_for_run(run_id, lambda run: run.status == RunStatus.RUNNING)
    [doomed] = [worker for worker in workers if worker.pid == worker_pid(running)]
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.process.wait(timeout=5)
    killed_at = time.monotonic()

    # The other worker's reaper looks every quarter of the stale period.
    run = wait_for_run(run_id, timeout=stale * 1.25 + 5)
    noticed_after = time.monotonic() - killed_at
    assert run.status == RunStatus.FAILED
    assert run.error == f"the worker running it stopped (no heartbeat for {stale:g}s)"
    assert (run.finished_at - run.heartbeat_at).total_seconds() >= stale  # not one moment early
    assert noticed_after <= stale * 1.25 + 1
    node = AgentRunNode.objects.get(run_id=run_id, node_id="long")
    assert node.status == NodeStatus.FAILED and node.error.startswith("interrupted: the worker running it stopped")

"""`manage.py serve` runs the agents worker as its child: runs get done, and the worker ends when serve does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.actions import do_create_agent, do_enqueue_run
from agents.executor import WORKER_STOPPED
from agents.models import AgentRunNode, NodeStatus, RunStatus
from tests.agents.conftest import LONG_WAIT, WORKER_TEST_ENV, greeting_pipeline, wait_for, wait_for_run, worker_pid
from tests.conftest import PROJECT_DIR, REDIS_PREFIX, SHARED_WORKSPACES, database_url, free_port
from tests.factories import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def process_state(pid: int) -> str | None:
    """The kernel's state letter of a process (Linux), None when it is gone; a zombie ('Z') has ended too."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    return process_state(pid) not in (None, "Z", "X")


class Serve:
    def __init__(self, *, local_model_url: str, var_dir: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "DATABASE_URL": database_url(), "ANTHROPIC_BASE_URL": local_model_url,
               "ANTHROPIC_API_KEY": "local-model-placeholder-key", "COPILOT_VAR_DIR": str(var_dir),
               "COPILOT_WORKSPACES_DIR": str(SHARED_WORKSPACES), "COPILOT_REDIS_PREFIX": REDIS_PREFIX,
               "COPILOT_AGENT_WORKERS": "1", "DJANGO_SETTINGS_MODULE": "copilot_site.settings", **WORKER_TEST_ENV}
        self.log_path = var_dir / "serve.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port), "--no-demo-user"], cwd=PROJECT_DIR,
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:  # a port that is not open yet: nothing to await
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                assert time.monotonic() < deadline, f"serve did not listen: {self.log_path.read_text()}"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def serve(local_model, tmp_path):
    server = Serve(local_model_url=local_model.url, var_dir=tmp_path)
    yield server
    server.stop()


def run_through_serve() -> int:
    """Queue a run, wait for the worker to do it; returns the pid of the worker that did."""
    agent = do_create_agent(owner_id=make_user().pk, name="pipeline", graph=greeting_pipeline())
    run = wait_for_run(do_enqueue_run(agent=agent).id, timeout=60)
    assert run.status == RunStatus.COMPLETED
    return worker_pid(run)


def test_serve_runs_the_worker_as_its_child_and_stops_it_when_it_stops(serve):
    worker = run_through_serve()
    assert parent_of(worker) == serve.process.pid
    agent = do_create_agent(owner_id=make_user().pk, name="long", graph=LONG_WAIT)
    run = do_enqueue_run(agent=agent)
    wait_for(lambda: AgentRunNode.objects.get(run=run).status, lambda status: status == NodeStatus.RUNNING)
    serve.process.send_signal(signal.SIGINT)  # Ctrl+C
    assert serve.process.wait(timeout=30) == 0, serve.log_path.read_text()
    assert not alive(worker)
    run = wait_for_run(run.id, timeout=1)  # the worker ended it on its way out
    assert run.status == RunStatus.FAILED and run.error == WORKER_STOPPED


def test_a_killed_serve_takes_its_worker_along(serve):
    worker = run_through_serve()
    serve.process.kill()
    serve.process.wait()
    wait_for(lambda: alive(worker), lambda is_alive: not is_alive, timeout=15, what=f"worker {worker}")

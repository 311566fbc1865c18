"""Fixtures of the agents tests: real worker processes on the test database, graphs to run, waiting on the database."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from agents.models import AgentRun
from agents.supervisor import WorkerProcess
from chat.events.notices import notice_relay
from tests.conftest import REDIS_PREFIX, SHARED_WORKSPACES, database_url
from tests.factories import make_user

# Fast enough that tests observing a worker wait little; the stale timeout stays the default unless a test sets it.
# (Queued work wakes a worker at once: no fast polling of the queue.)
WORKER_TEST_ENV = {"COPILOT_RUN_HEARTBEAT_SECONDS": "0.5"}


class WorkerForTests:
    """A real `manage.py agents_worker` process on the test database and the local model."""

    def __init__(self, *, local_model_url: str, var_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        env = {**os.environ, "DATABASE_URL": database_url(), "ANTHROPIC_BASE_URL": local_model_url,
               "ANTHROPIC_API_KEY": "local-model-placeholder-key", "COPILOT_VAR_DIR": str(var_dir),
               "COPILOT_WORKSPACES_DIR": str(SHARED_WORKSPACES), "COPILOT_REDIS_PREFIX": REDIS_PREFIX,
               "DJANGO_SETTINGS_MODULE": "copilot_site.settings", **WORKER_TEST_ENV, **(extra_env or {})}
        var_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = var_dir / f"worker-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")
        self.worker = WorkerProcess(env=env, log=self.log)

    @property
    def pid(self) -> int:
        return self.worker.pid

    @property
    def process(self):
        return self.worker.process

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        self.worker.stop(timeout=15)
        self.log.close()


@pytest.fixture(scope="module")
def agents_worker(django_db_setup, django_db_blocker, local_model, tmp_path_factory):
    """One worker for the tests of a module (they use transactional_db so it sees their rows)."""
    worker = WorkerForTests(local_model_url=local_model.url, var_dir=tmp_path_factory.mktemp("worker"))
    yield worker
    worker.stop()


@pytest.fixture
def start_worker(local_model, tmp_path):
    """Start workers of the test's own (e.g. with a short stale timeout); each is stopped after the test."""
    started: list[WorkerForTests] = []

    def start(**extra_env: str) -> WorkerForTests:
        worker = WorkerForTests(local_model_url=local_model.url, var_dir=tmp_path / f"worker-{len(started)}",
                            extra_env=extra_env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
async def notice_relay_running(settings):
    """The web process's notice relay, as daphne runs it without Redis, listening when the test starts."""
    if not settings.COPILOT["REDIS_URL"]:
        notice_relay.start()
        await asyncio.wait_for(notice_relay.listening.wait(), timeout=10)
    yield
    await notice_relay.stop()


@pytest.fixture
async def relay_stopped():
    """Stop this test's notice relay (it runs on the test's event loop) when the test ends."""
    yield
    await notice_relay.stop()


def wait_for(read, predicate, *, timeout: float = 30, what: str = "the database"):
    """Poll `read()` until `predicate` holds of it: another process (a worker) changes it, and nothing tells us."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not change as awaited within {timeout}s: {value!r}")
        time.sleep(0.05)


def wait_for_run(run_id, predicate=lambda run: run.is_finished, *, timeout: float = 30) -> AgentRun:
    return wait_for(lambda: AgentRun.objects.select_related("version").get(pk=run_id), predicate, timeout=timeout,
                    what=f"run {run_id}")


wait_for_run_async = database_sync_to_async(wait_for_run)


LONG_WAIT = {"nodes": [{"id": "long", "block": "wait", "input": {"seconds": 60}}]}  # runs until stopped


def two_waits_and_a_join(seconds: float = 1) -> dict:
    """Two `wait` nodes side by side, then a `text` node that needs both."""
    return {"nodes": [{"id": "left", "block": "wait", "input": {"seconds": seconds}},
                      {"id": "right", "block": "wait", "input": {"seconds": seconds}},
                      {"id": "join", "block": "text", "input": {"template": "waited {l}s and {r}s"}}],
            "links": [{"from": "left", "output": "seconds", "to": "join", "input": "values.l"},
                      {"from": "right", "output": "seconds", "to": "join", "input": "values.r"}]}


def greeting_pipeline() -> dict:
    """Five nodes: a greeting and a sum side by side, joined, then measured by a calculator, and a JSON pick."""
    return {
        "nodes": [
            {"id": "greet", "block": "text", "input": {"template": "Hello {name}", "values": {"name": "Ada"}}},
            {"id": "sum", "block": "calculator", "input": {"expression": "20 + 22"}},
            {"id": "sentence", "block": "text", "input": {"template": "{greeting}, the answer is {n}."}},
            {"id": "doubled", "block": "calculator", "input": {"expression": "2 * 21"}},
            {"id": "pick", "block": "json_extract", "input": {"data": {"answers": [7, 42]}, "path": "answers[1]"}},
        ],
        "links": [
            {"from": "greet", "output": "text", "to": "sentence", "input": "values.greeting"},
            {"from": "sum", "output": "result", "to": "sentence", "input": "values.n"},
        ],
    }


@pytest.fixture
def api():
    """An API client of a new user, with a token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user()).key}")
    return client


def create_agent(api, graph, name="pipeline") -> str:
    created = api.post("/api/agents/", {"name": name, "description": "a test agent", "graph": graph}, format="json")
    assert created.status_code == 201, created.data
    assert created.data["status"] == "ready" and created.data["version"] == 1
    return created.data["id"]


def start_run(api, agent_id, inputs=None) -> str:
    body = {"inputs": inputs} if inputs is not None else {}
    started = api.post(f"/api/agents/{agent_id}/runs/", body, format="json")
    assert started.status_code == 202, started.data
    assert started.data["status"] == "queued" and started.data["started_at"] is None
    return started.data["run_id"]


def worker_pid(run) -> int:
    return int(run.process.rsplit(":", 1)[1])


@pytest.fixture
def library(django_db_blocker):
    """The library's agents as the data migration adds them: a transactional test before this one flushed them."""
    import importlib

    from django.apps import apps

    with django_db_blocker.unblock():
        importlib.import_module("agents.migrations.0005_library_agents").add_library(apps, None)
    return importlib.import_module("agents.migrations.0005_library_agents").LIBRARY

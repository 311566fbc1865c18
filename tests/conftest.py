"""Fixtures shared by the whole suite: the local model, settings for tests, real server processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from chat.engine.registry import running_turns
from chat.events.factory import reset_event_log
from localmodel.server import LocalModelServer

PROJECT_DIR = Path(__file__).resolve().parent.parent
# Each test run (and xdist worker) counts its rate limits apart in a shared Redis.
REDIS_PREFIX = f"copilot-test-{uuid.uuid4().hex[:12]}"
SHARED_WORKSPACES = Path(tempfile.gettempdir()) / "copilot-test-workspaces"


@pytest.fixture(scope="session", autouse=True)
def flush_retried_after_a_deadlock():
    """Emptying the test database between tests (TRUNCATE of every table) may meet a read of a server process that
    a test shared (a page still loading its snapshot as it closes). PostgreSQL then picks one of the two to fail:
    when it picks the flush, it is tried again, as a deadlocked transaction should be."""
    from django.db import OperationalError
    from django.db.backends.base.operations import BaseDatabaseOperations

    flush = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        for attempt in range(5):
            try:
                return flush(self, sql_list)
            except OperationalError as error:
                if "deadlock detected" not in str(error) or attempt == 4:
                    raise

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    BaseDatabaseOperations.execute_sql_flush = flush


@pytest.fixture(scope="session")
def local_model():
    """The local model on its own port, shared by every test of this worker."""
    server = LocalModelServer(keep_requests=True)  # tests read what the CLI sent
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def copilot_settings(settings, local_model, tmp_path_factory):
    """Point the engine at the local model and give it folders of its own."""
    # Fast logins in tests; PBKDF2 stays available for users a server process must log in (make_user(portable=True)).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher",
                                 "django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    var = tmp_path_factory.mktemp("copilot-var")
    settings.COPILOT = {
        **settings.COPILOT,
        "ANTHROPIC_BASE_URL": local_model.url,
        "ANTHROPIC_API_KEY": "local-model-placeholder-key",
        "CLI_HOME_DIR": var / "claude-home",
        "WORKSPACES_DIR": var / "workspaces",
        "REDIS_PREFIX": REDIS_PREFIX,
        "WRITE_TITLES": False,  # tests of titles turn it on (a title is written in a task that outlives the turn)
    }
    return settings.COPILOT


@pytest.fixture(scope="session", autouse=True)
def metrics_of_gone_processes_forgotten():
    """The metrics folder of the test processes keeps no figures of earlier runs (serve does this at its start)."""
    from ops.metrics import forget_processes_gone

    forget_processes_gone()


@pytest.fixture(autouse=True)
def fresh_event_log():
    reset_event_log()
    yield
    reset_event_log()


@pytest.fixture(autouse=True)
def no_cli_left_warm():
    """End the warm CLIs a test left (each test has an event loop of its own: its clients cannot outlive it)."""
    yield
    pool = running_turns.pool
    for client in list(pool.clients.values()):
        if client.cli_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(client.cli_pid, signal.SIGTERM)
    pool.clients.clear()
    pool.sockets.clear()
    pool._tasks.clear()


@pytest.fixture
async def no_turn_left_running():
    """Fail a test that leaves a turn running in this process (and end it)."""
    yield
    running = list(running_turns._tasks.values())
    if running:  # a turn that has appended its `finish` may still be tidying up (its liveness, its CLI)
        await asyncio.wait(running, timeout=10)
    left = [task for task in running if not task.done()]
    await running_turns.shutdown()
    assert not left, f"turns left running: {left}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url() -> str:
    """The URL of the test database this worker uses, for server processes it starts."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}" if db["NAME"].startswith("/") else f"sqlite:///{PROJECT_DIR / db['NAME']}"
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class ServerProcess:
    """A real server process serving copilot as users run it (`manage.py serve`: daphne and everything it sets up),
    on the test database and the local model, with no agents workers (tests start their own) and no demo user.
    DEBUG is off, as in production; cookies go over plain HTTP (DJANGO_HTTPS=0)."""

    def __init__(self, *, local_model_url: str, var_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        env = {**os.environ, "DATABASE_URL": database_url(), "ANTHROPIC_BASE_URL": local_model_url,
               "ANTHROPIC_API_KEY": "local-model-placeholder-key", "COPILOT_VAR_DIR": str(var_dir),
               # Shared by every server a test starts, as in a deployment; each keeps its own CLI home.
               "COPILOT_WORKSPACES_DIR": str(SHARED_WORKSPACES), "COPILOT_REDIS_PREFIX": REDIS_PREFIX,
               "COPILOT_AGENT_WORKERS": "0", "COPILOT_WRITE_TITLES": "0", "DJANGO_DEBUG": "0", "DJANGO_HTTPS": "0",
               "COPILOT_SHUTDOWN_DRAIN_SECONDS": "0",  # tests of the drain set their own
               "DJANGO_SETTINGS_MODULE": "copilot_site.settings", **(extra_env or {})}
        self.log_path = var_dir / f"daphne-{self.port}.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port), "--no-demo-user"],
            cwd=PROJECT_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited: {self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)  # polling a port that is not open yet: nothing to await
        raise RuntimeError(f"daphne did not listen within {timeout}s: {self.log_path.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def daphne_server(django_db_setup, django_db_blocker, local_model, tmp_path_factory):
    """One daphne process for the tests of a module (they use transactional_db so it sees their rows)."""
    server = ServerProcess(local_model_url=local_model.url, var_dir=tmp_path_factory.mktemp("daphne"))
    yield server
    server.stop()


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (no browser download).

    Per module: Playwright's sync API keeps an event loop running on this thread while it is open, which
    async tests scheduled later on the same worker cannot share.
    """
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("the browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # real turns on a loaded two-core machine

    # Playwright's sync API keeps an event loop on this thread; the ORM calls of the tests stay synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()

"""/healthz, /readyz and /metrics (PROTOCOL §9): no login, short timeouts that say which check failed, readiness
that turns 503 before a shutdown ends turns, and /metrics only for loopback or the bearer token."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import websockets
from channels.db import database_sync_to_async
from rest_framework.authtoken.models import Token

from tests.conftest import PROJECT_DIR, ServerProcess, free_port
from tests.factories import is_finish, make_session, make_user, receive_until, script, send_frame, wait_tool

# What a server process started here says of Redis: it inherits REDIS_URL (CI sets it).
REDIS_OF_A_SERVER = "ok" if os.environ.get("REDIS_URL") else "skipped"

TOKEN = "metrics-token-5c1e9b"


def test_health_answers_anyone_at_any_host_without_touching_the_database(client):
    # No django_db mark: a query would fail the test.
    response = client.get("/healthz", headers={"host": "10.20.30.40:8000"})  # a probe at the pod's IP
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies


@pytest.mark.django_db
def test_ready_when_the_database_answers_and_redis_is_not_configured(client, copilot_settings):
    copilot_settings["REDIS_URL"] = None
    response = client.get("/readyz", headers={"host": "10.20.30.40:8000"})
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "skipped"}}


@pytest.mark.django_db
def test_ready_checks_redis_when_configured_and_says_why_it_fails(client, copilot_settings):
    copilot_settings["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    assert client.get("/readyz").json()["checks"] == {"database": "ok", "redis": "ok"}

    copilot_settings["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("ConnectionError: "), body


def test_the_endpoints_answer_get_only(client):
    response = client.post("/readyz")
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.django_db
@pytest.mark.parametrize("meta, allowed", [
    ({}, True),  # loopback
    ({"REMOTE_ADDR": "::1"}, True),
    ({"REMOTE_ADDR": "203.0.113.9"}, False),
    ({"HTTP_X_FORWARDED_FOR": "203.0.113.9"}, False),  # a proxy on this machine, speaking for someone else
    ({"HTTP_FORWARDED": "for=203.0.113.9"}, False),
    ({"REMOTE_ADDR": "203.0.113.9", "HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, True),
    ({"HTTP_X_FORWARDED_FOR": "203.0.113.9", "HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, True),
    ({"REMOTE_ADDR": "203.0.113.9", "HTTP_AUTHORIZATION": f"Bearer {TOKEN}x"}, False),
    ({"REMOTE_ADDR": "203.0.113.9", "HTTP_AUTHORIZATION": f"Token {TOKEN}"}, False),
])
def test_metrics_answer_loopback_and_the_bearer_token_only(client, copilot_settings, meta, allowed):
    copilot_settings["METRICS_TOKEN"] = TOKEN
    response = client.get("/metrics", **meta)
    if allowed:
        assert response.status_code == 200
        assert b"# TYPE copilot_running_turns gauge" in response.content
    else:
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"


@pytest.mark.django_db
def test_without_a_token_setting_no_bearer_opens_metrics(client, copilot_settings):
    copilot_settings["METRICS_TOKEN"] = ""
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer ").status_code == 403


@pytest.mark.django_db
def test_the_endpoints_are_not_part_of_the_api_schema(client):
    client.force_login(make_user())
    schema = client.get("/api/schema/", headers={"accept": "application/json"}).json()
    assert schema["paths"]
    assert not [path for path in schema["paths"] if path.rstrip("/") in {"/healthz", "/readyz", "/metrics"}]


class BareDaphne:
    """daphne serving the app on a database that may not answer (`manage.py serve` would migrate it first)."""

    def __init__(self, *, database_url: str, var_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        env = {**os.environ, "DATABASE_URL": database_url, "COPILOT_VAR_DIR": str(var_dir), "DJANGO_DEBUG": "0",
               "DJANGO_HTTPS": "0", "DJANGO_SETTINGS_MODULE": "copilot_site.settings", **(extra_env or {})}
        self.log = open(var_dir / "daphne.log", "w")
        self.process = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                                         "copilot_site.asgi:application"], cwd=PROJECT_DIR, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, (var_dir / "daphne.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                assert time.monotonic() < deadline, "daphne did not listen"
                time.sleep(0.05)  # a port that is not open yet: nothing to await

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=20)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def silent_database():
    """A TCP port that accepts connections and never says a word: a database that hangs."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    for connection in accepted:
        connection.close()
    listener.close()


@pytest.mark.e2e
def test_readiness_fails_when_the_database_is_unreachable_and_says_why(tmp_path, silent_database):
    refused = BareDaphne(database_url=f"postgres://copilot@127.0.0.1:{free_port()}/copilot", var_dir=tmp_path)
    try:
        assert refused.get("/healthz").status_code == 200  # the process serves
        response = refused.get("/readyz")
    finally:
        refused.stop()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"] == REDIS_OF_A_SERVER
    assert body["checks"]["database"].startswith("OperationalError: "), body
    assert "refused" in body["checks"]["database"]

    hanging = BareDaphne(database_url=f"postgres://copilot@127.0.0.1:{silent_database}/copilot", var_dir=tmp_path,
                         extra_env={"COPILOT_READY_CHECK_TIMEOUT_SECONDS": "1"})
    try:
        started = time.monotonic()
        response = hanging.get("/readyz")
        took = time.monotonic() - started
        assert hanging.get("/healthz").status_code == 200  # a hanging database holds none of the server's threads
    finally:
        hanging.stop()
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "timed out after 1 s"
    assert 1 <= took < 5


@database_sync_to_async
def owner_with_a_session():
    user = make_user()
    return str(make_session(user).id), Token.objects.create(user=user).key


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
async def test_on_sigterm_readiness_turns_503_before_the_running_turn_is_ended(local_model, tmp_path):
    session_id, token = await owner_with_a_session()
    server = ServerProcess(local_model_url=local_model.url, var_dir=tmp_path,
                           extra_env={"COPILOT_SHUTDOWN_DRAIN_SECONDS": "3"})
    try:
        async with websockets.connect(f"{server.ws_url}/ws/sessions/{session_id}/",
                                      additional_headers={"Authorization": f"Token {token}"}) as client:
            await client.send(json.dumps({"type": "resume", "after_seq": 0}))
            await client.send(json.dumps(send_frame(script({"tools": [wait_tool(60)]}))))
            await receive_until(client, lambda f: f.get("type") == "event"
                                and f["chunk"]["type"] == "tool-input-available")
            async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
                assert (await http.get("/readyz")).status_code == 200
                server.process.terminate()
                signalled = time.monotonic()
                async with asyncio.timeout(5):
                    while (draining := await http.get("/readyz")).status_code == 200:
                        pass  # the signal reaches the server's loop between two requests: ask again
                not_ready_after = time.monotonic() - signalled
            rest = await receive_until(client, is_finish, timeout=20)
            ended_after = time.monotonic() - signalled
    finally:
        server.stop()
    assert draining.status_code == 503
    assert draining.json() == {"status": "unavailable",
                               "checks": {"database": "ok", "redis": REDIS_OF_A_SERVER,
                                          "shutdown": "shutting down"}}
    assert not_ready_after < 1
    assert rest[-2]["chunk"]["data"]["status"] == "interrupted"
    assert ended_after >= 3  # the turn ran on through the drain


def test_a_check_stuck_in_the_database_never_holds_the_process_at_exit():
    from ops.readiness import DaemonThreads

    threads = DaemonThreads(1, "stuck-test")
    stuck = threading.Event()
    assert threads.submit(lambda: 42).result(timeout=5) == 42
    threads.submit(lambda: stuck.wait(30))  # as a connect to a database that never answers
    assert all(thread.daemon for thread in threads._threads)
    stuck.set()

"""A public bind is safe by default: `manage.py serve` on an address other than loopback, started for real."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from django.contrib.auth import get_user_model

from tests.conftest import PROJECT_DIR, SHARED_WORKSPACES, database_url, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

PUBLIC = "0.0.0.0"
SECRET = "a-long-random-secret-for-this-test-only-" + "x" * 20


def serve_env(local_model, tmp_path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DJANGO_", "COPILOT_")) and key != "DATABASE_URL"}
    return {**env, "DATABASE_URL": database_url(), "ANTHROPIC_BASE_URL": local_model.url,
            "COPILOT_VAR_DIR": str(tmp_path), "COPILOT_WORKSPACES_DIR": str(SHARED_WORKSPACES),
            "COPILOT_AGENT_WORKERS": "0", "DJANGO_SETTINGS_MODULE": "copilot_site.settings", **extra}


def start_serve(env: dict[str, str], *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "manage.py", "serve", "--host", PUBLIC, "--port", str(port), *args],
                               cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, port


def wait_listening(process: subprocess.Popen, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # a port that is not open yet: nothing to await
        assert process.poll() is None, process.stdout.read()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("serve did not listen")


def stop(process: subprocess.Popen) -> str:
    process.terminate()
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def test_a_public_bind_without_a_secret_key_refuses_to_start_and_says_why(local_model, tmp_path):
    process, _ = start_serve(serve_env(local_model, tmp_path))
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    [line] = [line for line in output.splitlines() if "DJANGO_SECRET_KEY" in line]
    assert "refusing to serve on 0.0.0.0" in line
    assert not get_user_model().objects.filter(username="demo").exists()


def test_a_public_bind_with_a_secret_key_serves_without_debug_and_creates_no_demo_user(local_model, tmp_path):
    process, port = start_serve(serve_env(local_model, tmp_path, DJANGO_SECRET_KEY=SECRET))
    try:
        wait_listening(process, port)
        login = httpx.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=10)
        missing = httpx.get(f"http://127.0.0.1:{port}/no/such/page/", timeout=10)
    finally:
        output = stop(process)
    assert login.status_code == 200 and "Secure" in login.headers.get("set-cookie", "")  # HTTPS unless said
    assert missing.status_code == 404 and "URLconf" not in missing.text  # no debug page
    assert not get_user_model().objects.filter(username="demo").exists()
    assert "demo-password" not in output


def test_a_public_demo_user_needs_a_password_the_operator_chose(local_model, tmp_path):
    weak, _ = start_serve(serve_env(local_model, tmp_path, DJANGO_SECRET_KEY=SECRET), "--demo-password", "demo")
    output, _ = weak.communicate(timeout=60)
    assert weak.returncode != 0 and "--demo-password" in output and "too short" in output

    chosen = "a sentence long enough to be a password"
    process, port = start_serve(serve_env(local_model, tmp_path, DJANGO_SECRET_KEY=SECRET, DJANGO_HTTPS="0"),
                                "--demo-password", chosen)
    try:
        wait_listening(process, port)
        user = get_user_model().objects.get(username="demo")
    finally:
        output = stop(process)
    assert user.check_password(chosen) and not user.check_password("demo-password")
    assert "the password you chose" in output and chosen not in output


def test_settings_default_to_no_debug_and_read_every_limit_from_the_environment():
    probe = ("import django, json; django.setup(); from django.conf import settings as s; "
             "c = s.COPILOT; print(json.dumps([s.DEBUG, c['MAX_RUNNING_TURNS_PER_USER'], c['RATE_LIMITS']['turns'], "
             "c['RATE_LIMITS']['frames'], c['EXTRA_ALLOWED_TOOLS'], c['STALE_TURN_SECONDS'], "
             "c['MAX_QUEUED_RUNS_PER_USER']]))")
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "copilot_site.settings",
           "COPILOT_VAR_DIR": str(PROJECT_DIR / "var"), "COPILOT_MAX_RUNNING_TURNS_PER_USER": "7",
           "COPILOT_RATE_LIMITS": "turns=5/30", "COPILOT_EXTRA_ALLOWED_TOOLS": "Bash, Task",
           "COPILOT_STALE_TURN_SECONDS": "12.5", "COPILOT_MAX_QUEUED_RUNS_PER_USER": "3"}
    output = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
                            check=True).stdout
    debug, running, turns, frames, extra, stale, queued = json.loads(output)
    assert debug is False
    assert (running, turns, frames, extra, stale, queued) == (7, [5, 30.0], [60, 1], ["Bash", "Task"], 12.5, 3)

    bad = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_DIR, capture_output=True, text=True,
                         env={**env, "COPILOT_MAX_RUNNING_TURNS_PER_USER": "many"})
    assert bad.returncode != 0 and "COPILOT_MAX_RUNNING_TURNS_PER_USER='many' is not a valid value" in bad.stderr

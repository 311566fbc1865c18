"""Helpers of the benchmarks that run real daphne processes and talk to them over websockets.

A benchmark calls `setup_django_on_bench_database()` (bench/common.py) first, then uses these: daphne
processes on `copilot_bench`, the local model in a process of its own, a user with a DRF token, websocket
connections authenticated with it, and the clean-up of everything it made.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
PLACEHOLDER_KEY = "local-model-placeholder-key"


def take_redis_url() -> str:
    """REDIS_URL for the servers that use Redis (default redis://127.0.0.1:6379/0).

    It is removed from this process's environment before Django starts: the benchmark process itself
    keeps the in-memory channel layer, and only the server processes it starts are told to use Redis.
    """
    return os.environ.pop("REDIS_URL", "") or DEFAULT_REDIS_URL


def raise_open_file_limit(wanted: int = 16_384) -> int:
    """Raise this process's soft limit on open files (the servers it starts inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_children: list[subprocess.Popen] = []


def _stop_children() -> None:
    for process in list(_children):
        stop_process(process)


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process in _children:
        _children.remove(process)


def _on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # runs the `finally` blocks and atexit: the child processes are stopped


atexit.register(_stop_children)
signal.signal(signal.SIGTERM, _on_sigterm)


class DaphneServer:
    """A daphne process serving copilot on the benchmark's database, as tests/conftest.py ServerProcess does."""

    def __init__(self, *, name: str, local_model_url: str, var_dir: Path, workspaces_dir: Path,
                 redis_url: str = "", extra_env: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = free_port()
        server_var = var_dir / f"server-{name}"
        server_var.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "DATABASE_URL": os.environ["DATABASE_URL"], "ANTHROPIC_BASE_URL": local_model_url,
               "ANTHROPIC_API_KEY": PLACEHOLDER_KEY, "COPILOT_VAR_DIR": str(server_var),
               # Shared by every server of one benchmark, as in a deployment; each keeps its own CLI home.
               "COPILOT_WORKSPACES_DIR": str(workspaces_dir),
               # The project's settings with the websocket rate limits lifted (bench/server_settings.py).
               "DJANGO_SETTINGS_MODULE": "bench.server_settings",
               # Redis keys of this benchmark (event logs, rate counters) apart from any other user of this Redis.
               "COPILOT_REDIS_PREFIX": redis_prefix(),
               "REDIS_URL": redis_url,  # "": the in-memory event log and channel layer
               **(extra_env or {})}
        self.log_path = server_var / f"daphne-{self.port}.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "copilot_site.asgi:application"],
            cwd=PROJECT_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        _children.append(self.process)
        self._wait_ready()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def session_url(self, session_id) -> str:
        return f"{self.ws_url}/ws/sessions/{session_id}/"

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne ({self.name}) exited: {self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"daphne ({self.name}) did not listen within {timeout}s: {self.log_path.read_text()}")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"daphne ({self.name}) exited: {self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


class LocalModelProcess:
    """The local model (localmodel.server.LocalModelServer) in a process of its own.

    Used where the benchmark's own asyncio loop is busy receiving frames during a turn: in a thread of this
    process the model would compete with it for the GIL and slow the turn being measured.
    """

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from bench.live import serve_local_model; serve_local_model()"],
            cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
        _children.append(self.process)
        line = self.process.stdout.readline().strip()
        if not line.startswith("http://"):
            stop_process(self.process)
            raise RuntimeError(f"the local model did not start: {line!r}")
        self.url = line

    def stop(self) -> None:
        stop_process(self.process)


def serve_local_model() -> None:
    """Entry point of LocalModelProcess: LocalModelServer().start(), print its URL, serve until terminated."""
    from localmodel.server import LocalModelServer

    server = LocalModelServer()
    print(server.start(), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    finally:
        server.stop()


def make_var_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="copilot-bench-"))


def create_user_with_token():
    """A throw-away user and its DRF token key (synchronous ORM)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create(username=f"bench-{uuid.uuid4().hex[:8]}")
    return user, Token.objects.create(user=user).key


def create_session(user, title: str):
    from chat.models import ChatSession

    return ChatSession.objects.create(owner=user, title=title)


def delete_bench_rows(user, var_dir: Path) -> None:
    """The user (cascades to its token, sessions, turns, tool calls) and the CLI transcripts of its turns."""
    from chat.models import TranscriptEntry

    user.delete()
    # The session store's project keys are derived from the workspace paths, which live under var_dir.
    TranscriptEntry.objects.filter(project_key__contains=var_dir.name).delete()


_REDIS_PREFIX = f"copilot-bench-{uuid.uuid4().hex[:12]}"


def redis_prefix() -> str:
    """The Redis key prefix of this run's servers (COPILOT_REDIS_PREFIX), or "copilot" where it is not a setting."""
    from django.conf import settings

    return _REDIS_PREFIX if "REDIS_PREFIX" in settings.COPILOT else "copilot"


def delete_redis_keys(redis_url: str, session_ids) -> None:
    """Every key under this run's prefix (event logs, rate counters); only the sessions' keys without a prefix."""
    import redis

    prefix = redis_prefix()
    client = redis.Redis.from_url(redis_url)
    try:
        if prefix == _REDIS_PREFIX:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        else:
            keys = [f"{prefix}:session:{session_id}:{part}" for session_id in session_ids
                    for part in ("lock", "seq", "events")]
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
    finally:
        client.close()


def clean_up(*steps) -> None:
    """Run every clean-up step (callables), each even when an earlier one failed; report failures on stderr."""
    for step in steps:
        try:
            step()
        except Exception as exc:  # the rest must still run: processes stopped, keys and files removed
            print(f"clean-up step {getattr(step, '__name__', step)} failed: {type(exc).__name__}: {exc}",
                  file=sys.stderr)


def remove_var_dir(var_dir: Path) -> None:
    shutil.rmtree(var_dir, ignore_errors=True)


async def open_socket(url: str, token_key: str):
    """A websockets client connection with the DRF token header (no compression, keepalive pings or proxy)."""
    from websockets.asyncio.client import connect

    return await connect(url, additional_headers={"Authorization": f"Token {token_key}"}, compression=None,
                         ping_interval=None, max_size=4 * 1024 * 1024, max_queue=None, open_timeout=30,
                         proxy=None)


def frame_text(frame: dict) -> str:
    return json.dumps(frame)


EVENT_PREFIX = '{"type": "event", "seq": '


def event_seq(raw: str) -> int | None:
    """The seq of an `event` frame as the server serialises it (json.dumps, key order of Event.frame), else None."""
    if not raw.startswith(EVENT_PREFIX):
        return None
    return int(raw[len(EVENT_PREFIX):raw.index(",", len(EVENT_PREFIX))])


def is_finish(raw: str) -> bool:
    return raw.endswith('"chunk": {"type": "finish"}}')


def script_text(*steps: dict) -> str:
    """A user message that makes the local model play `steps` (as tests/factories.py `script` builds it)."""
    return "#script " + json.dumps(list(steps))


def wait_tool(seconds: float) -> dict:
    return {"name": "mcp__copilot__run_block", "input": {"block": "wait", "input": {"seconds": seconds}}}


def send_frame(text: str) -> dict:
    return {"type": "send", "text": text, "client_message_id": str(uuid.uuid4())}


def ms(seconds: float) -> float:
    return seconds * 1000

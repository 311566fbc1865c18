"""The worker processes `manage.py serve` runs beside the web server.

Each is a `manage.py agents_worker` child: restarted when it dies (its reaper then ends what the dead one
left), terminated when serve exits, and killed by the kernel if serve itself is killed (Linux).
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent.parent
STOP_SECONDS = 10
RESTART_DELAY_SECONDS = 2
PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """A function for the child, between fork and exec, asking for SIGTERM when the parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up now: the child must not load anything
    except (OSError, AttributeError):
        return None
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class WorkerProcess:
    """One `manage.py agents_worker` child process."""

    def __init__(self, *, env: dict[str, str] | None = None, log: IO | None = None, args: tuple[str, ...] = ()) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(PROJECT_DIR / "manage.py"), "agents_worker", *args], cwd=PROJECT_DIR, env=env,
            stdout=log, stderr=subprocess.STDOUT if log is not None else None, preexec_fn=_parent_death_signal(),
            # Its own session: Ctrl+C at serve's terminal reaches serve, which stops its workers with one signal.
            start_new_session=True)
        self._asked = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def ask_to_stop(self) -> None:
        """SIGTERM, once: the run in progress ends failed and is reported (a second signal would cut it short)."""
        if self.process.poll() is None and not self._asked:
            self._asked = True
            self.process.terminate()

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Ask it to stop, then SIGKILL it after `timeout`."""
        self.ask_to_stop()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            logger.warning("agents worker (pid %s) did not stop in %ss; killing it", self.pid, timeout)
            self.process.kill()
            self.process.wait()


class WorkerSupervisor:
    """Keeps `count` worker processes running until `stop`."""

    def __init__(self, *, count: int, env: dict[str, str]) -> None:
        self.count = count
        self.env = env
        self._workers: list[WorkerProcess] = []
        self._watchers: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        for slot in range(self.count):
            self._workers.append(WorkerProcess(env=self.env))
            watcher = threading.Thread(target=self._watch, args=(slot,), name=f"agents-worker-{slot}", daemon=True)
            watcher.start()
            self._watchers.append(watcher)

    def _watch(self, slot: int) -> None:
        while True:
            worker = self._workers[slot]
            code = worker.process.wait()
            if self._stopping.is_set():
                return
            logger.warning("agents worker (pid %s) exited with %s; starting another", worker.pid, code)
            if self._stopping.wait(RESTART_DELAY_SECONDS):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._workers[slot] = WorkerProcess(env=self.env)

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            workers = list(self._workers)
        for worker in workers:
            worker.ask_to_stop()  # all at once: they stop side by side
        for worker in workers:
            worker.stop()
        for watcher in self._watchers:
            watcher.join(timeout=STOP_SECONDS)

"""The worker process's one event loop, on a thread of its own.

Every run, heartbeat, reaper pass and report append of a worker runs on it: connections opened there (the
Redis event log's) live as long as the process instead of one task, and a stopping worker can interrupt the
run in progress. The tasks framework calls task functions synchronously; they hand their coroutine over here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any

STOP_SECONDS = 10


class BackgroundLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._runs: set[asyncio.Task[Any]] = set()
        self._thread = threading.Thread(target=self._serve, name="agents-loop", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coroutine: Coroutine[Any, Any, Any], *, interruptible: bool = False) -> Any:
        """Run `coroutine` on the loop and return its result; call from any thread but the loop's.

        An `interruptible` one (a run) is cancelled by `interrupt_runs`.
        """
        return asyncio.run_coroutine_threadsafe(self._tracked(coroutine, interruptible), self.loop).result()

    def start(self, coroutine: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Start `coroutine` on the loop without waiting for it; `stop` cancels it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    async def _tracked(self, coroutine: Coroutine[Any, Any, Any], interruptible: bool) -> Any:
        task = asyncio.current_task()
        if interruptible:
            self._runs.add(task)
        try:
            return await coroutine
        finally:
            self._runs.discard(task)

    def interrupt_runs(self) -> None:
        """Cancel the runs in progress (the worker is stopping): each ends failed; its waiter sees CancelledError."""
        self.loop.call_soon_threadsafe(lambda: [task.cancel() for task in list(self._runs)])

    def stop(self) -> None:
        """Cancel everything on the loop, wait for it (bounded), then stop the loop."""
        async def cancel_all() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(timeout=STOP_SECONDS)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=STOP_SECONDS)


_background: BackgroundLoop | None = None
_lock = threading.Lock()


def background_loop() -> BackgroundLoop:
    """The process's background loop, started on first use."""
    global _background
    with _lock:
        if _background is None:
            _background = BackgroundLoop()
        return _background

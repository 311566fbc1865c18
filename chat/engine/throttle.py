"""Merges bursts of text deltas, so a fast model does not cost every watcher one frame per token."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from chat.events.chunks import Chunk

logger = logging.getLogger(__name__)

DELTA_TYPES = frozenset({"text-delta", "reasoning-delta"})


class DeltaThrottle:
    """Passes chunks on to `send` in order, at most one delta per `window` seconds.

    A delta that comes sooner after the last one sent is held, and later deltas of the same part are
    added to it; the held delta goes out when its window ends, or before any other chunk. A window of
    0 passes every chunk straight through.
    """

    def __init__(self, send: Callable[[Chunk], Awaitable[None]], *, window: float) -> None:
        self._send = send
        self._window = window
        self._lock = asyncio.Lock()
        self._held: Chunk | None = None
        self._last_delta_at = float("-inf")
        self._timer: asyncio.Task[None] | None = None
        self._timer_failure: BaseException | None = None

    async def put(self, chunk: Chunk) -> None:
        async with self._lock:
            self._raise_timer_failure()
            if chunk["type"] not in DELTA_TYPES or self._window <= 0:
                await self._send_held()
                await self._send(chunk)
                return
            held = self._held
            if held is not None and held["type"] == chunk["type"] and held["id"] == chunk["id"]:
                held["delta"] += chunk["delta"]
                return
            await self._send_held()
            if self._now() - self._last_delta_at >= self._window:
                await self._send_delta(chunk)
            else:
                self._held = dict(chunk)
                self._start_timer()

    async def close(self) -> None:
        """Send what is held and stop the timer; the throttle passes chunks straight through after this."""
        self._window = 0
        async with self._lock:
            await self._send_held()
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
            self._timer = None
        if self._timer_failure is not None:
            logger.error("a held delta was not sent", exc_info=self._timer_failure)
            self._timer_failure = None

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def _send_delta(self, chunk: Chunk) -> None:
        self._last_delta_at = self._now()
        await self._send(chunk)

    async def _send_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            await self._send_delta(held)

    def _start_timer(self) -> None:
        if self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._send_held_when_due(), name="delta throttle")

    async def _send_held_when_due(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self._last_delta_at + self._window - self._now()))
            async with self._lock:
                if self._held is None:
                    return
                if self._now() - self._last_delta_at >= self._window:
                    try:
                        await self._send_held()
                    except Exception as exc:  # raised again to the turn by its next put or close
                        self._timer_failure = exc
                    return

    def _raise_timer_failure(self) -> None:
        failure, self._timer_failure = self._timer_failure, None
        if failure is not None:
            raise failure

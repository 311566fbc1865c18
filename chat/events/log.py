"""The session event log: the one place that assigns `seq`, keeps recent events and publishes them.

`InMemoryEventLog` serves one process (the default); `RedisEventLog` (redis_log.py) any number. Events
are appended under a per-session lock; a durable write that goes with an event is made inside that lock,
with the event's seq, before the event is kept and published — so the database never lags the log a
client can read.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer

from chat.conf import copilot_setting
from chat.events.chunks import Chunk


@dataclass(frozen=True)
class Event:
    seq: int
    session_id: str
    turn_id: str | None
    chunk: Chunk

    def frame(self) -> dict[str, Any]:
        return {"type": "event", "seq": self.seq, "turn_id": self.turn_id, "chunk": self.chunk}


def session_group(session_id: str) -> str:
    return f"chat.session.{session_id}"


# Called with the seq of the last event of a batch; returns False to drop the batch (e.g. a late output).
DurableWrite = Callable[[int], Awaitable[bool]]
SeqSeeder = Callable[[str], Awaitable[int]]


class InMemoryEventLog:
    """Events of each session in a bounded deque, seq seeded from the database on first use."""

    def __init__(self, *, seed_last_seq: SeqSeeder, max_events: int | None = None) -> None:
        self._seed_last_seq = seed_last_seq
        self._max_events = max_events
        self._events: dict[str, deque[Event]] = {}
        self._last_seq: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, session_id: str) -> asyncio.Lock:
        return self._locks.setdefault(session_id, asyncio.Lock())

    async def _ensure_seeded(self, session_id: str) -> None:
        if session_id not in self._last_seq:
            seeded = await self._seed_last_seq(session_id)
            self._last_seq.setdefault(session_id, seeded)
            max_events = self._max_events or copilot_setting("EVENT_LOG_MAX_EVENTS")
            self._events.setdefault(session_id, deque(maxlen=max_events))

    async def append(self, session_id: str, turn_id: str | None, batch: list[Chunk],
                     durable_write: DurableWrite | None = None) -> list[Event]:
        """Give `batch` consecutive seqs, run `durable_write(last seq)`, then keep and publish it.

        Returns the events appended: none when `durable_write` returned False.
        """
        if not batch:
            return []
        async with self._lock(session_id):
            await self._ensure_seeded(session_id)
            first = self._last_seq[session_id] + 1
            if durable_write is not None and not await durable_write(first + len(batch) - 1):
                return []
            events = [Event(first + offset, session_id, turn_id, chunk) for offset, chunk in enumerate(batch)]
            self._last_seq[session_id] = events[-1].seq
            self._events[session_id].extend(events)
        await publish(session_id, events)
        return events

    async def last_seq(self, session_id: str) -> int:
        await self._ensure_seeded(session_id)
        return self._last_seq[session_id]

    async def read_after(self, session_id: str, after_seq: int) -> list[Event] | None:
        """Every kept event with seq > after_seq, or None when some of them are no longer kept."""
        await self._ensure_seeded(session_id)
        kept = self._events[session_id]
        if after_seq >= self._last_seq[session_id]:
            return []
        if not kept or kept[0].seq > after_seq + 1:
            return None
        return [event for event in kept if event.seq > after_seq]


async def publish(session_id: str, events: list[Event]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    frames = [event.frame() for event in events]
    # Each frame also as JSON, made once here rather than once per watching socket.
    await layer.group_send(session_group(session_id), {"type": "chat.events", "events": frames,
                                                       "texts": [json.dumps(frame) for frame in frames]})


_event_log = None


def get_event_log():
    """The process's event log: Redis Streams when REDIS_URL is set, else in memory (built on first use)."""
    global _event_log
    if _event_log is None:
        from chat.selectors import durable_last_seq_async

        redis_url = copilot_setting("REDIS_URL")
        if redis_url:
            from chat.events.redis_log import RedisEventLog

            _event_log = RedisEventLog(url=redis_url, seed_last_seq=durable_last_seq_async,
                                       prefix=copilot_setting("REDIS_PREFIX"))
        else:
            _event_log = InMemoryEventLog(seed_last_seq=durable_last_seq_async)
    return _event_log


def reset_event_log() -> None:
    """Forget the process's event log (tests start each case with a new one)."""
    global _event_log
    _event_log = None

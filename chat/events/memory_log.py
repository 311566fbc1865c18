"""The session event log in this process's memory (the default, one process): bounded per session and in all.

Each session keeps its newest EVENT_LOG_MAX_EVENTS events; all sessions together keep at most
EVENT_LOG_MEMORY_BYTES, the least recently used ones forgotten first. A session is only forgotten when its
newest event was saved with a durable write (its turn is not mid-way), so its seq is seeded again exactly from
the database; a client that resumes it gets a snapshot, as PROTOCOL §3 says.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from chat.events.chunks import Chunk
from chat.events.log import DurableWrite, Event, SeqSeeder, publish
from core.conf import copilot_setting


@dataclass
class SessionEvents:
    last_seq: int
    events: deque[Event]
    bytes: int = 0
    durable_tail: bool = True  # the newest event was appended with a durable write
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class InMemoryEventLog:
    def __init__(self, *, seed_last_seq: SeqSeeder, max_events: int | None = None,
                 max_bytes: int | None = None) -> None:
        self._seed_last_seq = seed_last_seq
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._sessions: OrderedDict[str, SessionEvents] = OrderedDict()  # least recently used first
        self.bytes = 0

    async def _session(self, session_id: str) -> SessionEvents:
        kept = self._sessions.get(session_id)
        if kept is None:
            # No lock around the seeding (the database read): two first readers may both read it, and the first
            # to come back is kept.
            last_seq = await self._seed_last_seq(session_id)
            kept = self._sessions.get(session_id)
            if kept is None:
                max_events = self._max_events or copilot_setting("EVENT_LOG_MAX_EVENTS")
                kept = self._sessions[session_id] = SessionEvents(last_seq, deque(maxlen=max_events))
        self._sessions.move_to_end(session_id)
        return kept

    async def append(self, session_id: str, turn_id: str | None, batch: list[Chunk],
                     durable_write: DurableWrite | None = None) -> list[Event]:
        if not batch:
            return []
        kept = await self._session(session_id)
        async with kept.lock:
            first = kept.last_seq + 1
            if durable_write is not None and not await durable_write(first + len(batch) - 1):
                return []
            events = [Event.of(first + offset, session_id, turn_id, chunk) for offset, chunk in enumerate(batch)]
            kept.last_seq = events[-1].seq
            kept.durable_tail = durable_write is not None
            before = kept.bytes
            for event in events:
                if len(kept.events) == kept.events.maxlen:
                    kept.bytes -= len(kept.events[0].text)
                kept.events.append(event)
                kept.bytes += len(event.text)
            self.bytes += kept.bytes - before
        self._evict()
        await publish(session_id, events)
        return events

    def _evict(self) -> None:
        limit = self._max_bytes or copilot_setting("EVENT_LOG_MEMORY_BYTES")
        for session_id in list(self._sessions):
            if self.bytes <= limit:
                return
            kept = self._sessions[session_id]
            if kept.durable_tail and not kept.lock.locked():
                del self._sessions[session_id]
                self.bytes -= kept.bytes

    async def last_seq(self, session_id: str) -> int:
        return (await self._session(session_id)).last_seq

    async def read_after(self, session_id: str, after_seq: int) -> list[Event] | None:
        kept = await self._session(session_id)
        if after_seq >= kept.last_seq:
            return []
        if not kept.events or kept.events[0].seq > after_seq + 1:
            return None
        return [event for event in kept.events if event.seq > after_seq]

    async def forget(self, session_id: str) -> None:
        kept = self._sessions.pop(session_id, None)
        if kept is not None:
            self.bytes -= kept.bytes

    def kept_sessions(self) -> list[str]:
        return list(self._sessions)

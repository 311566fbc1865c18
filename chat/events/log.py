"""The session event log's interface: events, the `EventLog` protocol both logs implement, and publishing.

A log is the one place that assigns `seq`. Events are appended under a per-session lock; a durable write that
goes with an event is made inside that lock, with the event's seq, before the event is kept and published — so
the database never lags the log a client can read. `InMemoryEventLog` (memory_log.py) serves one process, the
default; `RedisEventLog` (redis_log.py) any number. chat.events.factory picks one.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.layers import get_channel_layer

from chat.events.chunks import Chunk


@dataclass(frozen=True)
class Event:
    seq: int
    session_id: str
    turn_id: str | None
    chunk: Chunk
    text: str = field(default="", compare=False)  # the frame as JSON, made once

    def frame(self) -> dict[str, Any]:
        return {"type": "event", "seq": self.seq, "turn_id": self.turn_id, "chunk": self.chunk}

    @classmethod
    def of(cls, seq: int, session_id: str, turn_id: str | None, chunk: Chunk) -> Event:
        event = cls(seq, session_id, turn_id, chunk)
        object.__setattr__(event, "text", json.dumps(event.frame()))
        return event


# Called with the seq of the last event of a batch; returns False to drop the batch (e.g. a late output).
DurableWrite = Callable[[int], Awaitable[bool]]
# The newest seq a session's events reached, as saved in the database: where a log without the session starts.
SeqSeeder = Callable[[str], Awaitable[int]]


class EventLog(Protocol):
    async def append(self, session_id: str, turn_id: str | None, batch: list[Chunk],
                     durable_write: DurableWrite | None = None) -> list[Event]:
        """Give `batch` consecutive seqs, run `durable_write(last seq)`, then keep and publish it.

        Returns the events appended: none when `durable_write` returned False.
        """

    async def last_seq(self, session_id: str) -> int:
        """The seq of the session's newest event (0 for none)."""

    async def read_after(self, session_id: str, after_seq: int) -> list[Event] | None:
        """Every kept event with seq > after_seq, or None when some of them are no longer kept."""

    async def forget(self, session_id: str) -> None:
        """Drop everything kept of a session (it was deleted)."""


def session_group(session_id: str) -> str:
    return f"chat.session.{session_id}"


async def publish(session_id: str, events: list[Event]) -> None:
    """Hand events to every reader of the session (sockets, event streams), through the channel layer."""
    layer = get_channel_layer()
    if layer is None:
        return
    # Each frame also as JSON, made once rather than once per watching socket.
    await layer.group_send(session_group(session_id), {"type": "chat.events", "events": [e.frame() for e in events],
                                                       "texts": [event.text for event in events]})

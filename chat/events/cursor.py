"""A reader's position in a session's event log: every event after it, in order, exactly once.

Live events arrive through the channel layer and may overlap a replay or skip ahead (a full channel);
the cursor drops what it already handed out and fills gaps from the log, so readers never see a seam.
"""

from __future__ import annotations

from typing import Any


class SnapshotNeeded(Exception):
    """The events after the cursor are no longer kept: the reader must start again from a snapshot."""


class EventCursor:
    def __init__(self, *, session_id: str, event_log, after_seq: int) -> None:
        self.session_id = session_id
        self.event_log = event_log
        self.delivered_seq = after_seq

    async def catch_up(self, *, up_to: int | None = None) -> list[dict[str, Any]]:
        """Frames of the kept events after the cursor (up to `up_to`), advancing it past them."""
        events = await self.event_log.read_after(self.session_id, self.delivered_seq)
        if events is None:
            raise SnapshotNeeded(self.session_id)
        return self._take(event.frame() for event in events if up_to is None or event.seq <= up_to)

    async def accept(self, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Of live frames, those to deliver now: repeats dropped, a gap before them read from the log."""
        out: list[dict[str, Any]] = []
        for frame in frames:
            if frame["seq"] > self.delivered_seq + 1:
                out += await self.catch_up(up_to=frame["seq"])
            else:
                out += self._take([frame])
        return out

    def _take(self, frames) -> list[dict[str, Any]]:
        taken = []
        for frame in frames:
            if frame["seq"] == self.delivered_seq + 1:
                self.delivered_seq = frame["seq"]
                taken.append(frame)
        return taken

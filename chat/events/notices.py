"""Appending notices (events outside turns) to their sessions' event logs, each once, with its seq saved.

Who appends: with a shared event log (REDIS_URL) the process that saved the notice, at once. Without one the log
lives in the web process, so a worker only tells it (core.broadcast, topic `chat.notices`) and the web
process's `NoticeRelay` appends. Either way, a notice whose append failed is appended by the next pass of
`deliver_pending_notices` (the relay's start, and the reaper's rounds).
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from chat.events import chunks
from chat.events.factory import get_event_log
from chat.models import SessionNotice
from core import broadcast
from core.conf import copilot_setting

logger = logging.getLogger(__name__)

TOPIC = "chat.notices"
LISTEN_AGAIN_SECONDS = 2
_holds_no_log = False


def leave_notices_to_the_web_process() -> None:
    """Called once by a process that serves no sockets (a worker): without a shared log, its own would reach
    nobody and could reuse seqs."""
    global _holds_no_log
    _holds_no_log = True


def appends_here() -> bool:
    return bool(copilot_setting("REDIS_URL")) or not _holds_no_log


def announce_notice(notice: SessionNotice) -> None:
    """After the notice's transaction committed: append it here, or wake the process that will."""
    if not appends_here():
        broadcast.send(TOPIC, {"session_id": str(notice.session_id)})
        return
    try:
        async_to_sync(deliver_notice)(notice)
    except Exception:
        logger.exception("session=%s could not append notice %s; it stays saved for the next pass",
                         notice.session_id, notice.pk)


@database_sync_to_async
def _record_seq(notice_id: int, seq: int) -> bool:
    return SessionNotice.objects.filter(pk=notice_id, seq__isnull=True).update(seq=seq) == 1


async def deliver_notice(notice: SessionNotice) -> bool:
    """Append the notice's event to its session's log; False when it had been appended already."""
    appended = await get_event_log().append(str(notice.session_id), None, [chunks.data(notice.kind, notice.payload)],
                                            lambda seq: _record_seq(notice.pk, seq))
    if appended:
        logger.info("session=%s %s notice appended as seq %s", notice.session_id, notice.kind, appended[0].seq)
    return bool(appended)


@database_sync_to_async
def _undelivered(limit: int = 100) -> list[SessionNotice]:
    return list(SessionNotice.objects.filter(seq__isnull=True).order_by("created_at", "id")[:limit])


async def deliver_pending_notices() -> int:
    """Append every saved notice not yet appended, oldest first; returns how many this call appended."""
    appended = 0
    while batch := await _undelivered():
        delivered = [await deliver_notice(notice) for notice in batch]
        appended += sum(delivered)
        if not any(delivered):
            break
    return appended


class NoticeRelay:
    """In a web process whose event log is its own (no REDIS_URL): appends the notices workers saved, when a
    worker says it saved one."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start relaying on `loop` (the running one by default), unless it runs already."""
        if self._task is None or self._task.done():
            self.listening = asyncio.Event()
            self._task = (loop or asyncio.get_running_loop()).create_task(self._relay(), name="notice relay")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _relay(self) -> None:
        while True:
            try:
                async with broadcast.listen(TOPIC) as inbox:
                    self.listening.set()
                    while True:
                        try:
                            await deliver_pending_notices()  # at first: what was saved while nobody listened
                        except Exception:
                            logger.exception("appending notices failed; trying again at the next one")
                        await inbox.get()
                        inbox.drain()  # one pass reads every pending notice
            except Exception:
                logger.warning("lost the workers' announcements of notices; listening again shortly", exc_info=True)
                await asyncio.sleep(LISTEN_AGAIN_SECONDS)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


notice_relay = NoticeRelay()

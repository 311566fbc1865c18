"""Ties the engine to the server process: the reaper starts with it; on shutdown turns end and sockets hear it.

Shutdown drains first: from the signal on, `draining()` is true (readiness answers 503, so a balancer sends no
new work here), and only after SHUTDOWN_DRAIN_SECONDS are running turns ended.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from chat.consumers import wait_for_delivery
from chat.engine.reaper import reap_periodically
from chat.engine.registry import running_turns
from chat.events.notices import notice_relay
from chat.titles import title_writer
from core.conf import copilot_setting

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 5  # how long the last events of ended turns may take to reach open sockets
_background: list[asyncio.Task] = []
_shutdown: list[asyncio.Task] = []
_draining = False


def draining() -> bool:
    """Whether this process is shutting down (it ends its turns once SHUTDOWN_DRAIN_SECONDS have passed)."""
    return _draining


def attach_to_daphne() -> None:
    """Under daphne (Twisted's asyncio reactor): start the reaper, and without Redis the relay of notices that
    workers save; on SIGTERM/SIGINT end every turn, then stop.

    Daphne cancels every consumer as soon as the reactor begins to stop, so turns are ended (and their last
    events delivered) before the reactor is asked to stop, not in a shutdown trigger beside daphne's own.
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    loop = getattr(reactor, "_asyncioEventloop", None)
    if reactor is None or loop is None:
        return

    def begin_shutdown() -> None:
        if _shutdown:  # a second signal: stop now
            reactor.stop()
            return
        logger.info("shutting down: not ready from now on; ending %d running turn(s) in %ss",
                    len(running_turns.session_ids()), copilot_setting("SHUTDOWN_DRAIN_SECONDS"))
        task = loop.create_task(stop_everything(), name="shutdown")
        task.add_done_callback(lambda _: reactor.stop())
        _shutdown.append(task)

    def start() -> None:
        # Twisted installed its own handlers when the reactor started; these replace them.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(begin_shutdown))
        _background.append(loop.create_task(reap_periodically(running_turns.session_ids), name="reaper"))
        if not copilot_setting("REDIS_URL"):
            notice_relay.start(loop)

    reactor.callWhenRunning(start)


async def stop_everything() -> None:
    global _draining
    _draining = True
    await asyncio.sleep(copilot_setting("SHUTDOWN_DRAIN_SECONDS"))
    for task in _background:
        task.cancel()
    await asyncio.gather(*_background, return_exceptions=True)
    _background.clear()
    await notice_relay.stop()
    final_seqs = await running_turns.shutdown()
    await title_writer.stop()
    # Let open sockets send each interrupted turn's `finish` before the server closes them.
    await wait_for_delivery(final_seqs, timeout=DRAIN_SECONDS)

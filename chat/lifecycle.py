"""Ties the engine to the server process: the reaper starts with it; on shutdown turns end and sockets hear it."""

from __future__ import annotations

import asyncio
import logging
import sys

from chat.consumers import wait_for_delivery
from chat.engine.reaper import reap_periodically
from chat.engine.registry import running_turns

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 5
_background: list[asyncio.Task] = []


def attach_to_daphne() -> None:
    """Under daphne (Twisted's asyncio reactor): start the reaper, and on SIGTERM end every turn first."""
    reactor = sys.modules.get("twisted.internet.reactor")
    loop = getattr(reactor, "_asyncioEventloop", None)
    if reactor is None or loop is None:
        return
    from twisted.internet import defer

    def start() -> None:
        _background.append(loop.create_task(reap_periodically(running_turns.session_ids), name="reaper"))

    def shutdown():
        logger.info("shutting down: ending %d running turn(s)", len(running_turns.session_ids()))
        return defer.Deferred.fromFuture(loop.create_task(stop_everything()))

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", shutdown)


async def stop_everything() -> None:
    for task in _background:
        task.cancel()
    await asyncio.gather(*_background, return_exceptions=True)
    _background.clear()
    final_seqs = await running_turns.shutdown()
    # Let open sockets send each interrupted turn's `finish` before the server closes them.
    await wait_for_delivery(final_seqs, timeout=DRAIN_SECONDS)

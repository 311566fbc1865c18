"""A bound on what a websocket or an event stream may owe its client: one that stops reading is dropped.

Twisted never blocks a write: what the client does not read waits in the server's memory. Registered as
the connection's push producer, `SendBacklog` hears from Twisted when the connection's buffers are full
(`pauseProducing`) and when they drained (`resumeProducing`). Frames written in between are counted; past
MAX_SEND_BACKLOG_BYTES the sender waits for the client to catch up, and a client that has not caught up
within SEND_BACKLOG_GRACE_SECONDS is dropped. A client reading at full speed always catches up, however
much is sent in one go (a long replay); it resumes from its last seq when it reconnects after a drop.
The producer registered before (Twisted's HTTP channel, which the connection began as) keeps hearing
every call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from core.conf import copilot_setting

logger = logging.getLogger(__name__)

# The kernel's send buffer of a guarded connection, fixed instead of autotuned (up to 4 MB on Linux), so
# that it too holds only a bounded amount for a client that stopped reading. Linux doubles the value given.
KERNEL_SEND_BUFFER_BYTES = 128 * 1024


def daphne_protocol(send: Any) -> Any | None:
    """The daphne protocol behind an application's ASGI `send`; None under other servers.

    Daphne hands each application `functools.partial(server.handle_reply, protocol)` as its `send`.
    """
    if isinstance(send, functools.partial) and send.args and hasattr(send.args[0], "registerProducer"):
        return send.args[0]
    return None


@implementer(IPushProducer)
class SendBacklog:
    """What one connection owes its client while its buffers are full, and the drop of a client that stalls."""

    def __init__(self, transport: Any, *, max_bytes: int, grace_seconds: float, label: str) -> None:
        self._transport = transport
        self._max_bytes = max_bytes
        self._grace_seconds = grace_seconds
        self._label = label
        self._drained = asyncio.Event()
        self._drained.set()
        self.waiting_bytes = 0
        self.dropped = False
        self._previous = transport.producer if transport.streamingProducer else None
        if transport.producer is not None:
            transport.unregisterProducer()
        transport.registerProducer(self, True)

    @property
    def paused(self) -> bool:
        return not self._drained.is_set()

    def pauseProducing(self) -> None:  # the client reads slower than we send
        self._drained.clear()
        if self._previous is not None:
            self._previous.pauseProducing()

    def resumeProducing(self) -> None:  # it caught up
        self._drained.set()
        self.waiting_bytes = 0
        if self._previous is not None:
            self._previous.resumeProducing()

    def stopProducing(self) -> None:  # the connection is gone
        self._drained.set()
        if self._previous is not None:
            self._previous.stopProducing()

    async def admit(self, nbytes: int) -> bool:
        """Whether a frame of `nbytes` may be written now (waiting for the client if it is far behind);
        False once the connection is dropped."""
        if self.dropped:
            return False
        if self.paused:
            self.waiting_bytes += nbytes
            if self.waiting_bytes > self._max_bytes:
                try:
                    await asyncio.wait_for(self._drained.wait(), self._grace_seconds)
                except TimeoutError:
                    self._drop()
                    return False
        return not self.dropped

    def _drop(self) -> None:
        if self.dropped:
            return
        self.dropped = True
        logger.warning("%s: dropped the connection of a client that stopped reading (%d bytes waiting for it)",
                       self._label, self.waiting_bytes)
        self._transport.abortConnection()

    def release(self) -> None:
        """Give the connection back to the producer registered before (a response ended; it may serve more)."""
        if self._transport.producer is self:
            self._transport.unregisterProducer()
            if self._previous is not None:
                self._transport.registerProducer(self._previous, True)


def guard_send_backlog(send: Any, *, label: str) -> SendBacklog | None:
    """A SendBacklog on the TCP connection behind `send`; None when there is none to guard (another server,
    a connection already gone, a transport that is not a plain TCP socket)."""
    protocol = daphne_protocol(send)
    transport = getattr(protocol, "transport", None)
    try:
        transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER_BYTES)
        return SendBacklog(transport, max_bytes=copilot_setting("MAX_SEND_BACKLOG_BYTES"),
                           grace_seconds=copilot_setting("SEND_BACKLOG_GRACE_SECONDS"), label=label)
    except (AttributeError, OSError, RuntimeError):
        return None


class StreamingBacklogMiddleware:
    """ASGI middleware: an event stream response (`text/event-stream`) gets a SendBacklog on its connection."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        backlog: SendBacklog | None = None

        async def send_within_backlog(message: dict[str, Any]) -> None:
            nonlocal backlog
            if message["type"] == "http.response.start" and is_event_stream(message):
                backlog = guard_send_backlog(send, label=scope["path"])
            elif message["type"] == "http.response.body" and backlog is not None:
                if not await backlog.admit(len(message.get("body", b""))):
                    return  # dropped: the server tells the app of the disconnect, which ends the stream
                if not message.get("more_body", False):
                    backlog.release()
            await send(message)

        await self.app(scope, receive, send_within_backlog)


def is_event_stream(response_start: dict[str, Any]) -> bool:
    return any(name.lower() == b"content-type" and value.startswith(b"text/event-stream")
               for name, value in response_start.get("headers", []))

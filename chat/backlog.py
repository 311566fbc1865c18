"""A bound on what a websocket or an event stream may owe its client: one that stops reading is dropped.

Twisted never blocks a write: what the client does not read waits in the server's memory. Registered as
the connection's push producer, `SendBacklog` hears from Twisted when the connection's buffers are full
(`pauseProducing`) and when they drained (`resumeProducing`); frames sent in between are counted, and
past the limit the connection is aborted. The client resumes from its last seq when it reconnects.
The producer registered before (Twisted's HTTP channel, which the websocket was upgraded from) keeps
hearing every call.
"""

from __future__ import annotations

import functools
import logging
import socket
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from chat.conf import copilot_setting

logger = logging.getLogger(__name__)

# The kernel's send buffer of a websocket, fixed instead of autotuned (up to 4 MB on Linux), so that it
# too holds only a bounded amount for a client that stopped reading. Linux doubles the value given.
KERNEL_SEND_BUFFER_BYTES = 128 * 1024


def daphne_protocol(send: Any) -> Any | None:
    """The daphne websocket protocol behind a consumer's ASGI `send`; None under other servers.

    Daphne hands each application `functools.partial(server.handle_reply, protocol)` as its `send`.
    """
    if isinstance(send, functools.partial) and send.args and hasattr(send.args[0], "registerProducer"):
        return send.args[0]
    return None


@implementer(IPushProducer)
class SendBacklog:
    """Counts what one connection owes its client while its buffers are full; aborts it past `max_bytes`."""

    def __init__(self, protocol: Any, *, max_bytes: int, label: str) -> None:
        self._protocol = protocol
        self._max_bytes = max_bytes
        self._label = label
        self.paused = False
        self.waiting_bytes = 0
        self.dropped = False
        transport = protocol.transport
        transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER_BYTES)
        self._previous = transport.producer if transport.streamingProducer else None
        if transport.producer is not None:
            transport.unregisterProducer()
        transport.registerProducer(self, True)

    def pauseProducing(self) -> None:  # the client reads slower than we send
        self.paused = True
        if self._previous is not None:
            self._previous.pauseProducing()

    def resumeProducing(self) -> None:  # it caught up
        self.paused = False
        self.waiting_bytes = 0
        if self._previous is not None:
            self._previous.resumeProducing()

    def stopProducing(self) -> None:  # the connection is gone
        self.paused = False
        if self._previous is not None:
            self._previous.stopProducing()

    def admit(self, nbytes: int) -> bool:
        """Whether a frame of `nbytes` may be written now; False once the connection is dropped.

        Frames written while the buffers are full count against the limit; past it the connection is
        aborted. (A single large frame may fill the buffers: it is not counted against a reader.)
        """
        if self.dropped:
            return False
        if self.paused:
            self.waiting_bytes += nbytes
            if self.waiting_bytes > self._max_bytes:
                self.dropped = True
                logger.warning("%s: dropped the connection of a client that stopped reading "
                               "(%d bytes waiting for it)", self._label, self.waiting_bytes)
                self._protocol.transport.abortConnection()
                return False
        return True

    def release(self) -> None:
        """Give the connection back to the producer registered before (a response ended; it may serve more)."""
        transport = self._protocol.transport
        if transport.producer is self:
            transport.unregisterProducer()
            if self._previous is not None:
                transport.registerProducer(self._previous, True)


def guard_send_backlog(send: Any, *, max_bytes: int, label: str) -> SendBacklog | None:
    """A SendBacklog on the connection behind `send` (None when no daphne protocol is behind it)."""
    protocol = daphne_protocol(send)
    if protocol is None or getattr(protocol, "transport", None) is None:
        return None
    return SendBacklog(protocol, max_bytes=max_bytes, label=label)


class StreamingBacklogMiddleware:
    """ASGI middleware: a streaming HTTP response (the SSE stream) gets a SendBacklog on its connection."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        backlog: SendBacklog | None = None

        async def send_within_backlog(message: dict[str, Any]) -> None:
            nonlocal backlog
            if message["type"] == "http.response.body":
                more_body = message.get("more_body", False)
                if backlog is None and more_body:
                    backlog = guard_send_backlog(send, max_bytes=copilot_setting("MAX_SEND_BACKLOG_BYTES"),
                                                 label=scope["path"])
                if backlog is not None:
                    if not backlog.admit(len(message.get("body", b""))):
                        return  # dropped: the server tells the app of the disconnect, which ends the stream
                    if not more_body:
                        backlog.release()
            await send(message)

        await self.app(scope, receive, send_within_backlog)

"""Warm clients: a session's CLI stays connected after a turn, and the session's next turn reuses it.

Starting a CLI costs ~0.35 s before the first token; a connected `ClaudeSDKClient` answers its next query in
~20 ms. So a session's client is kept (`WarmClient`), started ahead of time when someone opens the chat
(`ClientPool.prewarm`), and a turn that arrives while it is still starting waits for it. Every callback goes
through the client's `SessionBinding`, bound to the turn it serves (chat.engine.binding).

A client is closed after WARM_IDLE_SECONDS with no turn and no open socket, when room is needed for another
(least recently used first; never one running a turn), on shutdown, and after any SDK or CLI error. It serves a
turn only while its conversation is the session's (the turn before is the last it ran, the same SDK session,
no branch point, no budget of its own): otherwise the turn starts a CLI afresh, which resumes from the
`SessionStore`, so a turn that ran in another process, or after its client was gone, continues exactly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from claude_agent_sdk import ClaudeSDKClient

from chat.engine import observers
from chat.engine.binding import SessionBinding
from chat.engine.capacity import max_warm_clients
from chat.engine.options import ConversationPoint, session_options
from core.conf import copilot_setting

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 60
CLOSE_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class SessionPoint:
    """What a turn needs of a client: whose session, which model, where its conversation is."""

    session_id: str
    owner_id: int | None
    model: str
    point: ConversationPoint
    after_turn_id: str | None  # the last turn that ended before this one (None: the first)


class WarmClient:
    def __init__(self, wanted: SessionPoint) -> None:
        self.session_id = wanted.session_id
        self.owner_id = wanted.owner_id
        self.model = wanted.model
        self.point = wanted.point
        self.after_turn_id = wanted.after_turn_id
        self.binding = SessionBinding(wanted.session_id)
        self.client: ClaudeSDKClient | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.busy = False
        self.closed = False
        self.last_used = time.monotonic()
        self.cli_pid: int | None = None
        self._idle_timer: asyncio.Task[None] | None = None
        self.warm = False  # connected before the turn that now has it asked for it

    def fits(self, wanted: SessionPoint) -> bool:
        """Whether this client may serve a turn that needs `wanted`. A model change is made on the client."""
        if self.closed or not self.alive():
            return False
        return (not wanted.point.branches and self.point.max_budget_usd == wanted.point.max_budget_usd
                and self.point.sdk_session_id == wanted.point.sdk_session_id
                and self.after_turn_id == wanted.after_turn_id)

    def alive(self) -> bool:
        """False once its CLI process has exited (it may die between turns)."""
        if not self.ready.done():
            return True
        process = getattr(getattr(self.client, "_transport", None), "_process", None)
        return process is not None and process.returncode is None

    async def connect(self) -> None:
        options = session_options(session_id=self.session_id, owner_id=self.owner_id, binding=self.binding,
                                  model=self.model, point=self.point)
        try:
            client = ClaudeSDKClient(options)
            with observers.cli_scope(session_id=self.session_id):
                await asyncio.wait_for(client.connect(), CONNECT_TIMEOUT_SECONDS)
        except BaseException as exc:
            self.closed = True
            if not self.ready.done():
                self.ready.set_exception(exc)
                self.ready.exception()  # retrieved: whoever waits sees it
            raise
        self.client = client
        process = getattr(getattr(client, "_transport", None), "_process", None)
        self.cli_pid = getattr(process, "pid", None)
        logger.info("session=%s started a CLI (pid %s)", self.session_id, self.cli_pid)
        if not self.ready.done():
            self.ready.set_result(None)

    async def close(self) -> None:
        self.cancel_idle_timer()
        self.closed = True
        client, self.client = self.client, None
        if client is not None:
            try:
                await asyncio.wait_for(client.disconnect(), CLOSE_TIMEOUT_SECONDS)
            except Exception:
                logger.warning("session=%s the CLI did not close cleanly", self.session_id, exc_info=True)
            logger.info("session=%s closed its CLI (pid %s)", self.session_id, self.cli_pid)

    def cancel_idle_timer(self) -> None:
        timer, self._idle_timer = self._idle_timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    def served(self, *, turn_id: str, sdk_session_id: str) -> None:
        """A turn ended on this client: its conversation is now after that turn."""
        self.after_turn_id = turn_id
        if sdk_session_id:
            self.point = ConversationPoint(sdk_session_id=sdk_session_id, max_budget_usd=self.point.max_budget_usd)
        self.last_used = time.monotonic()


@dataclass
class ClientPool:
    """The warm clients of this process, one per session at most, within MAX_WARM_CLIENTS."""

    clients: dict[str, WarmClient] = field(default_factory=dict)
    sockets: dict[str, int] = field(default_factory=dict)  # open sockets per session, in this process
    _tasks: set[asyncio.Task] = field(default_factory=set)

    def count(self) -> int:
        return sum(not client.closed for client in self.clients.values())

    def _spawn(self, coroutine, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def acquire(self, wanted: SessionPoint) -> WarmClient:
        """A connected client for a turn of the session, marked busy: its warm one when it fits, else a new one
        (room made by closing the least recently used idle client). Raises when a new CLI cannot start."""
        client = self.clients.get(wanted.session_id)
        if client is not None and not client.busy and client.fits(wanted):
            client.busy = True
            client.cancel_idle_timer()
            try:
                await client.ready
                if client.model != wanted.model:
                    await client.client.set_model(wanted.model)
                    client.model = wanted.model
                client.warm = True
                return client
            except Exception:
                logger.warning("session=%s its warm CLI failed; starting another", wanted.session_id, exc_info=True)
                await self.discard(client)
        elif client is not None and not client.busy:
            await self.discard(client)  # stale: another conversation point, or its CLI died
        await self._make_room(keep=wanted.session_id)
        client = WarmClient(wanted)
        client.busy = True
        self.clients[wanted.session_id] = client
        try:
            await client.connect()
        except BaseException:
            self.clients.pop(wanted.session_id, None)
            raise
        return client

    def release(self, client: WarmClient, *, healthy: bool) -> None:
        """A turn is done with the client: keep it warm, or close it after a failure."""
        client.busy = False
        if not healthy or not copilot_setting("WARM_CLIENTS"):
            self._spawn(self.discard(client), f"close CLI {client.session_id}")
            return
        self._arm_idle_timer(client)

    async def discard(self, client: WarmClient) -> None:
        if self.clients.get(client.session_id) is client:
            del self.clients[client.session_id]
        await client.close()

    async def _make_room(self, *, keep: str) -> None:
        while self.count() >= max_warm_clients():
            idle = [c for c in self.clients.values() if not c.busy and c.session_id != keep and c.ready.done()]
            if not idle:
                return  # all running turns: the admission queue keeps running turns within the CLIs allowed
            oldest = min(idle, key=lambda c: c.last_used)
            logger.info("session=%s closing its idle CLI to make room", oldest.session_id)
            await self.discard(oldest)

    def prewarm(self, wanted: SessionPoint) -> None:
        """Start the session's CLI ahead of its next turn, when none is warm and there is a free slot (a prewarm
        never closes another session's client). A branch's turn forks its CLI's conversation: none waits for it."""
        if not copilot_setting("WARM_CLIENTS") or wanted.point.branches or self.count() >= max_warm_clients():
            return
        existing = self.clients.get(wanted.session_id)
        if existing is not None and (existing.busy or existing.fits(wanted)):
            return
        client = WarmClient(wanted)
        self.clients[wanted.session_id] = client

        async def start() -> None:
            if existing is not None:
                await self.discard(existing)
            try:
                await client.connect()
            except Exception:
                logger.warning("session=%s could not start a CLI ahead of time", wanted.session_id, exc_info=True)
                if self.clients.get(wanted.session_id) is client:
                    del self.clients[wanted.session_id]
                return
            if not client.busy:
                self._arm_idle_timer(client)

        self._spawn(start(), f"prewarm {wanted.session_id}")

    # --- idleness: no turn and no socket for WARM_IDLE_SECONDS ---

    def socket_opened(self, session_id: str) -> None:
        self.sockets[session_id] = self.sockets.get(session_id, 0) + 1
        client = self.clients.get(session_id)
        if client is not None:
            client.cancel_idle_timer()

    def socket_closed(self, session_id: str) -> None:
        self.sockets[session_id] = self.sockets.get(session_id, 1) - 1
        if self.sockets[session_id] <= 0:
            del self.sockets[session_id]
            client = self.clients.get(session_id)
            if client is not None and not client.busy:
                self._arm_idle_timer(client)

    def _arm_idle_timer(self, client: WarmClient) -> None:
        client.cancel_idle_timer()
        if self.sockets.get(client.session_id):
            return  # someone has the chat open: keep it warm for them

        async def close_when_idle() -> None:
            await asyncio.sleep(copilot_setting("WARM_IDLE_SECONDS"))
            if not client.busy and not self.sockets.get(client.session_id):
                logger.info("session=%s idle for %ss: closing its CLI", client.session_id,
                            copilot_setting("WARM_IDLE_SECONDS"))
                await self.discard(client)

        client._idle_timer = self._spawn(close_when_idle(), f"idle {client.session_id}")

    async def close_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        clients, self.clients = list(self.clients.values()), {}
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


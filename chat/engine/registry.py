"""The turns this process runs: started here, stopped here, and awaited on shutdown.

A turn belongs to its session, not to a socket: closing sockets never touches this registry.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from chat.actions.turns import StartedTurn, do_start_turn
from chat.engine.runner import TurnRunner, TurnSpec
from chat.errors import NothingRunning
from chat.events.factory import get_event_log
from chat.limits import check_rate
from chat.models import ChatSession, TurnStatus

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 5


def control_group(session_id: str) -> str:
    """The group a process running the session's turn listens on for `stop` from other processes."""
    return f"chat.turn-control.{session_id}"


class RunningTurns:
    def __init__(self) -> None:
        self._runners: dict[str, TurnRunner] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._watchdogs: set[asyncio.Task[None]] = set()
        self._listeners: dict[str, asyncio.Task[None]] = {}

    def launch(self, runner: TurnRunner) -> asyncio.Task[None]:
        session_id = str(runner.spec.session_id)
        loop = asyncio.get_running_loop()
        # A fresh context: a turn started from a request must not inherit that request's executor,
        # which asgiref shuts down when the request ends.
        task = loop.create_task(runner.run(), name=f"turn {runner.spec.turn_id}", context=contextvars.Context())
        self._runners[session_id] = runner
        self._tasks[session_id] = task
        self._listeners[session_id] = loop.create_task(
            self._listen_for_stop(session_id), name=f"stop listener {session_id}", context=contextvars.Context())
        task.add_done_callback(lambda done: self._forget(session_id, done))
        return task

    async def _listen_for_stop(self, session_id: str) -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(control_group(session_id), channel)
        try:
            while True:
                message = await layer.receive(channel)
                if message.get("type") == "turn.stop" and session_id in self._runners:
                    await self.request_stop(session_id)
        finally:
            await asyncio.shield(layer.group_discard(control_group(session_id), channel))

    def _forget(self, session_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(session_id) is task:
            del self._tasks[session_id]
            del self._runners[session_id]
            listener = self._listeners.pop(session_id, None)
            if listener is not None:
                listener.cancel()
                self._watchdogs.add(listener)  # awaited on shutdown like the watchdogs
                listener.add_done_callback(self._watchdogs.discard)
        if not task.cancelled() and task.exception() is not None:
            logger.error("turn task ended with an error", exc_info=task.exception())

    def session_ids(self) -> set[str]:
        return set(self._tasks)

    def running_count(self) -> int:
        """Turns this process runs now."""
        return len(self._tasks)

    def warm_client_count(self) -> int:
        """CLI processes this process keeps connected between turns (none yet: each turn starts its own)."""
        return 0

    def task_for(self, session_id: str) -> asyncio.Task[None] | None:
        return self._tasks.get(str(session_id))

    async def request_stop(self, session_id: str) -> None:
        """Ask the session's turn to stop and return at once; a watchdog cancels it if it lingers.

        Raises NothingRunning when this process runs no turn of the session. A repeated stop is harmless.
        """
        runner, task = self._runners.get(str(session_id)), self._tasks.get(str(session_id))
        if runner is None or task is None:
            raise NothingRunning("no turn is running in this session")
        if runner.stop_requested.is_set():
            return
        runner.stop_requested.set()
        watchdog = asyncio.get_running_loop().create_task(self._stop(runner, task), name=f"stop {session_id}")
        self._watchdogs.add(watchdog)
        watchdog.add_done_callback(self._watchdogs.discard)

    async def _stop(self, runner: TurnRunner, task: asyncio.Task[None]) -> None:
        try:
            await runner.request_stop()
        except Exception:
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
        if not done:
            logger.warning("%s did not stop in %ss; cancelling it", runner.log_prefix, STOP_GRACE_SECONDS)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def shutdown(self) -> dict[str, int]:
        """End every running turn as interrupted and wait for each to save its end.

        Returns the seq of each ended turn's `finish`, by session id.
        """
        runners, tasks = list(self._runners.values()), list(self._tasks.values())
        for runner in runners:
            runner.shutting_down = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *self._watchdogs, return_exceptions=True)
        return {str(runner.spec.session_id): runner.final_seq for runner in runners if runner.final_seq}


running_turns = RunningTurns()


@database_sync_to_async
def _start_turn_in_db(session: ChatSession, text: str, client_message_id: uuid.UUID) -> tuple[StartedTurn, TurnSpec]:
    started = do_start_turn(session=session, text=text, client_message_id=client_message_id)
    turn = started.turn
    # Read afresh: the caller's session object may predate the previous turn (a socket holds it for hours).
    sdk_session_id = ChatSession.objects.filter(pk=session.pk).values_list("sdk_session_id", flat=True).first()
    spec = TurnSpec(turn_id=turn.id, session_id=session.id, assistant_message_id=turn.assistant_message_id,
                    user_message_id=turn.user_message_id, prompt=text, sdk_session_id=sdk_session_id or "",
                    owner_id=session.owner_id)
    return started, spec


async def begin_turn(*, session: ChatSession, text: str, client_message_id: uuid.UUID) -> StartedTurn:
    """Save the user's message and start its turn in this process (or return the earlier one)."""
    await check_rate("turns", str(session.owner_id))
    started, spec = await _start_turn_in_db(session, text, client_message_id)
    if started.created:
        running_turns.launch(TurnRunner(spec=spec, event_log=get_event_log()))
    elif started.turn.status == TurnStatus.RUNNING and running_turns.task_for(str(session.id)) is None:
        logger.warning("session=%s turn=%s is running in another process", session.id, started.turn.id)
    return started


async def stop_turn(*, session: ChatSession) -> None:
    """Stop the session's running turn, in this process or, through the channel layer, in another.

    Raises NothingRunning when no turn of the session runs anywhere.
    """
    session_id = str(session.id)
    if running_turns.task_for(session_id) is not None:
        await running_turns.request_stop(session_id)
        return
    if not await database_sync_to_async(
            lambda: session.turns.filter(status=TurnStatus.RUNNING).exists())():
        raise NothingRunning("no turn is running in this session")
    await get_channel_layer().group_send(control_group(session_id), {"type": "turn.stop"})

"""The turns this process runs: started here, stopped here, and awaited on shutdown.

A turn belongs to its session, not to a socket: closing sockets never touches this registry.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from chat.actions.turns import StartedTurn, do_claim_turn, do_regenerate_turn, do_start_next_queued_turn, do_start_turn
from chat.branches import branch_of, resume_point
from chat.engine.capacity import Admission
from chat.engine.options import ConversationPoint
from chat.engine.runner import TurnRunner, TurnSpec
from chat.engine.warm import ClientPool, SessionPoint
from chat.errors import NothingRunning
from chat.events.factory import get_event_log
from chat.limits import check_rate
from chat.models import ChatSession, Turn, TurnStatus
from chat.selectors import default_model, last_ended_turn_id
from chat.usage import budget_left
from core.conf import copilot_setting

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 5


def control_group(session_id: str) -> str:
    """The group a process running the session's turn listens on for what other processes send it: a stop, an
    approval's decision, a call's cancel (chat.engine.control)."""
    return f"chat.turn-control.{session_id}"


class RunningTurns:
    def __init__(self) -> None:
        self.pool = ClientPool()  # the CLIs this process keeps, per session
        self.admission = Admission()  # the running slots, and the turns waiting for one
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
            self._listen_for_control(session_id), name=f"control listener {session_id}",
            context=contextvars.Context())
        task.add_done_callback(lambda done: self._forget(session_id, done))
        return task

    async def _listen_for_control(self, session_id: str) -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(control_group(session_id), channel)
        try:
            while True:
                message = await layer.receive(channel)
                runner = self._runners.get(session_id)
                if runner is None or message.get("turn_id") not in (None, str(runner.spec.turn_id)):
                    continue
                try:
                    await self.control(runner, message)
                except Exception:
                    logger.exception("%s could not act on %s", runner.log_prefix, message.get("type"))
        finally:
            await asyncio.shield(layer.group_discard(control_group(session_id), channel))

    async def control(self, runner: TurnRunner, message: dict[str, Any]) -> None:
        """Act on what another process (or this one) sent the turn."""
        kind = message.get("type")
        if kind == "turn.stop":
            await self.request_stop(str(runner.spec.session_id))
        elif kind == "turn.decided":
            runner.approvals.resolve(message["approval_id"], message["decision"], message["by"])
        elif kind == "turn.cancel_tool":
            runner.cancel_call(message["tool_call_id"], message["reason"])

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
        if not task.cancelled():  # not shutting down: the next queued message's turn starts
            self._spawn(self.start_next_queued(session_id), f"next turn {session_id}")

    def _spawn(self, coroutine, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name, context=contextvars.Context())
        self._watchdogs.add(task)
        task.add_done_callback(self._watchdogs.discard)

    async def start_next_queued(self, session_id: str) -> None:
        """Start the session's oldest queued turn, here, if one waits and none runs (PROTOCOL §7)."""
        try:
            spec = await database_sync_to_async(next_queued_spec)(session_id)
        except Exception:
            logger.exception("session=%s could not start its next queued turn", session_id)
            return
        if spec is not None:
            self.launch(self.new_runner(spec))

    def session_ids(self) -> set[str]:
        return set(self._tasks)

    def running_count(self) -> int:
        """Turns this process runs now."""
        return len(self._tasks)

    def warm_client_count(self) -> int:
        """CLI processes this process holds: running a turn, or kept warm between turns."""
        return self.pool.count()

    def runner_for(self, session_id: str) -> TurnRunner | None:
        return self._runners.get(str(session_id))

    def new_runner(self, spec: TurnSpec) -> TurnRunner:
        return TurnRunner(spec, get_event_log(), pool=self.pool, admission=self.admission)

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
        await self.pool.close_all()
        return {str(runner.spec.session_id): runner.final_seq for runner in runners if runner.final_seq}


running_turns = RunningTurns()


@database_sync_to_async
def _start_turn_in_db(session: ChatSession, text: str, client_message_id: uuid.UUID, *, queue: bool = False,
                      edit_of: uuid.UUID | None = None,
                      regenerate: uuid.UUID | None = None) -> tuple[StartedTurn, TurnSpec | None]:
    """Save the turn; the spec of a new one that this process runs (it claimed it), else None."""
    if regenerate is not None:
        started = do_regenerate_turn(session=session, answer_id=regenerate, client_message_id=client_message_id)
    else:
        started = do_start_turn(session=session, text=text, client_message_id=client_message_id, queue=queue,
                                edit_of=edit_of)
    if not started.created or started.queued or not do_claim_turn(turn_id=started.turn.id):
        return started, None
    return started, turn_spec(started.turn)


def next_queued_spec(session_id: str) -> TurnSpec | None:
    turn = do_start_next_queued_turn(session_id=uuid.UUID(session_id))
    return turn_spec(turn) if turn is not None else None


def turn_spec(turn: Turn) -> TurnSpec:
    """What a runner needs of a turn, read afresh (a socket may hold its session object for hours)."""
    session = ChatSession.objects.get(pk=turn.session_id)
    user_message, answer = turn.user_message, turn.assistant_message
    point = resume_point(user_message.parent_id)  # the model sees the branch the prompt follows
    return TurnSpec(turn_id=turn.id, session_id=session.id, assistant_message_id=turn.assistant_message_id,
                    user_message_id=turn.user_message_id, prompt=user_message.text,
                    sdk_session_id=point.sdk_session_id, resume_session_at=point.resume_session_at,
                    fork_session=point.fork_session, owner_id=session.owner_id,
                    model=session.model or default_model(), max_budget_usd=budget_left(session.owner_id),
                    after_turn_id=last_ended_turn_id(session.id, before=turn), approval_mode=session.approval_mode,
                    branch={"parent_id": str(user_message.parent_id) if user_message.parent_id else None,
                            "branch": branch_of(user_message), "answer_branch": branch_of(answer)})


def session_point(session_id: Any) -> SessionPoint | None:
    """What the session's next turn will need of a CLI, to start one ahead of it (a turn continuing the branch
    shown); None for an unknown session."""
    session = ChatSession.objects.filter(pk=session_id).first()
    if session is None:
        return None
    point = resume_point(session.active_leaf_id)
    return SessionPoint(session_id=str(session.id), owner_id=session.owner_id,
                        model=session.model or default_model(),
                        point=ConversationPoint(sdk_session_id=point.sdk_session_id,
                                                resume_session_at=point.resume_session_at,
                                                fork_session=point.fork_session,
                                                max_budget_usd=budget_left(session.owner_id)),
                        after_turn_id=last_ended_turn_id(session.id))


async def prewarm(*, session_id: str) -> None:
    """Someone opened the chat: start its CLI now, so it is ready when they have typed."""
    if not copilot_setting("WARM_CLIENTS") or running_turns.task_for(session_id) is not None:
        return
    point = await database_sync_to_async(session_point)(session_id)
    if point is not None:
        running_turns.pool.prewarm(point)


async def begin_turn(*, session: ChatSession, text: str, client_message_id: uuid.UUID, queue: bool = False,
                     edit_of: uuid.UUID | None = None, regenerate: uuid.UUID | None = None) -> StartedTurn:
    """Save the user's message and start its turn in this process (or return the earlier one).

    With `queue`, a message sent while a turn runs waits for its place (it starts when the one before it ends).
    With `edit_of` the message is a new version of that user message; with `regenerate` (an answer's id) no
    message is saved and the turn answers that answer's user message again (`text` is not used).
    """
    await check_rate("turns", str(session.owner_id))
    started, spec = await _start_turn_in_db(session, text, client_message_id, queue=queue, edit_of=edit_of,
                                            regenerate=regenerate)
    if spec is not None:
        running_turns.launch(running_turns.new_runner(spec))
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

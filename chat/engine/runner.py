"""Runs one turn: takes a slot and a CLI for it (chat.engine.capacity, chat.engine.warm), drives the SDK, and hands
each message's chunks to the turn's recorder (chat.engine.recording), keeping its liveness as it goes.

Whatever happens — the model's end, a stop, a crash of the CLI, the time limit, shutdown — a turn ends with its
open parts closed, its final state saved and exactly one `finish`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from claude_agent_sdk import StreamEvent, UserMessage

from chat.actions import turns as turn_actions
from chat.engine import observers
from chat.engine.adapter import TurnAdapter
from chat.engine.approvals import TurnApprovals
from chat.engine.binding import TurnBinding
from chat.engine.capacity import Admission
from chat.engine.liveness import TurnLiveness
from chat.engine.observers import TurnInfo
from chat.engine.options import ConversationPoint, tool_gate
from chat.engine.policy import TurnLimits, time_limit_reason
from chat.engine.recording import TurnIds, TurnRecorder
from chat.engine.warm import ClientPool, SessionPoint, WarmClient
from chat.events import chunks
from chat.events.chunks import Chunk, is_tool_end
from chat.events.liveness import idle, liveness_board
from chat.events.log import EventLog
from chat.models import DecidedBy, TurnStatus
from core.conf import copilot_setting

logger = logging.getLogger(__name__)

TIME_LIMIT_STOP_GRACE_SECONDS = 5  # how long a turn stopped by its time limit may take to end before it is cancelled

touch_turn = database_sync_to_async(turn_actions.do_touch_turn)


@dataclass
class TurnSpec:
    """What a runner needs to know about its turn, read from the database before it starts."""

    turn_id: uuid.UUID
    session_id: uuid.UUID
    assistant_message_id: uuid.UUID
    user_message_id: uuid.UUID
    prompt: str
    sdk_session_id: str = ""
    owner_id: int | None = None  # the session's owner: the copilot's tools act for them
    after_turn_id: str | None = None  # the last turn of the session that ended before this one
    model: str = ""  # empty: the MODEL setting
    max_budget_usd: float | None = None  # what the turn may spend (the SDK stops it past that)
    resume_session_at: str | None = None  # continue the SDK conversation from this entry (a branch)
    fork_session: bool = False  # …as a new SDK session, leaving the old one as it was
    branch: dict[str, Any] | None = None  # where the prompt and answer sit among their versions (data-user-message)
    approval_mode: str = "auto"  # "ask": every call the policy allows waits for the user (PROTOCOL §7)

    def session_point(self) -> SessionPoint:
        return SessionPoint(session_id=str(self.session_id), owner_id=self.owner_id,
                            model=self.model or copilot_setting("MODEL"),
                            point=ConversationPoint(sdk_session_id=self.sdk_session_id,
                                                    resume_session_at=self.resume_session_at,
                                                    fork_session=self.fork_session,
                                                    max_budget_usd=self.max_budget_usd),
                            after_turn_id=self.after_turn_id)


class TurnRunner:
    def __init__(self, spec: TurnSpec, event_log: EventLog, *, pool: ClientPool, admission: Admission) -> None:
        self.spec = spec
        self.pool = pool
        self.admission = admission
        self.adapter = TurnAdapter(max_event_output_chars=copilot_setting("TOOL_OUTPUT_EVENT_CHARS"))
        self.info = TurnInfo(session_id=str(spec.session_id), turn_id=str(spec.turn_id), user_id=spec.owner_id,
                             model=spec.model or copilot_setting("MODEL"))
        self.gate = tool_gate(session_id=str(spec.session_id), turn_id=str(spec.turn_id))
        self.liveness = TurnLiveness(session_id=str(spec.session_id), turn_id=str(spec.turn_id))
        self.recorder = TurnRecorder(TurnIds(spec.session_id, spec.turn_id, spec.assistant_message_id), event_log,
                                     self.adapter, info=self.info, denied=self.gate.denied)
        self.approvals = TurnApprovals(info=self.info, mode=spec.approval_mode, liveness=self.liveness,
                                       input_recorded=self.recorder.input_recorded)
        self.binding = TurnBinding(turn_id=str(spec.turn_id), gate=self.gate, on_activity=self.liveness.sign_of_life,
                                   before_call=self.approvals.before_call)
        self.stop_requested = asyncio.Event()
        self.shutting_down = False
        self.finished = False
        self.client: WarmClient | None = None
        self.final_seq: int | None = None  # the seq of this turn's `finish`, once appended
        self.time_limit_error = ""  # set when MAX_TURN_SECONDS stopped the turn
        self.final_status = TurnStatus.INTERRUPTED  # until the turn ends otherwise
        self.usage: dict[str, Any] | None = None
        self._querying = False

    @property
    def log_prefix(self) -> str:
        return f"session={self.spec.session_id} turn={self.spec.turn_id}"

    @property
    def cli_pid(self) -> int | None:
        return self.client.cli_pid if self.client is not None else None

    async def run(self) -> None:
        """Run the turn to its end. Whatever happens, it ends with its final state saved and one `finish`."""
        with observers.turn_scope(self.info):
            observers.notify("turn_started", self.info)
            self.liveness.start()
            try:
                await self._run()
            finally:
                await self.liveness.stop()
                observers.notify("turn_ended", self.info, status=self.final_status,
                                 seconds=time.monotonic() - self.recorder.started_at, usage=self.usage)

    async def _run(self) -> None:
        status, error = TurnStatus.COMPLETED, ""
        heartbeat = asyncio.create_task(self._keep_heartbeat(), name=f"heartbeat {self.spec.turn_id}")
        time_limit = asyncio.create_task(self._enforce_time_limit(asyncio.current_task()),
                                         name=f"time limit {self.spec.turn_id}")
        try:
            await self.emit(chunks.start(str(self.spec.assistant_message_id)))
            await self.emit(chunks.user_message(str(self.spec.user_message_id), self.spec.prompt,
                                                **(self.spec.branch or {})))
            await self._drive_sdk()
            outcome = self.adapter.outcome
            if self.stop_requested.is_set():
                status, error = self._stop_outcome()
            elif outcome is None:
                status, error = TurnStatus.FAILED, "the model process ended without a result"
            elif outcome.is_error:
                status, error = TurnStatus.FAILED, outcome.error_text or "the model failed"
        except asyncio.CancelledError:
            if self.stop_requested.is_set() and not self.shutting_down:
                status, error = self._stop_outcome()
            else:
                status, error = TurnStatus.INTERRUPTED, "the server shut down during this turn"
            await asyncio.shield(self._finish(status, error))
            raise
        except Exception as exc:
            logger.exception("%s failed", self.log_prefix)
            if self.stop_requested.is_set():
                status, error = self._stop_outcome()
            else:
                status, error = TurnStatus.FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            heartbeat.cancel()
            time_limit.cancel()
            await asyncio.gather(heartbeat, time_limit, return_exceptions=True)
        await self._finish(status, error)

    async def _until_stopped(self, work) -> bool:
        """Await `work` unless a stop comes first (then cancel it); True when it finished."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self.stop_requested.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return False
        task.result()
        return True

    async def _take_a_slot(self) -> bool:
        """A running slot in this process (capacity); a turn waits in line for one, as `starting`."""
        user_id = self.spec.owner_id
        if self.admission.try_enter(user_id):
            return True
        observers.notify("wait_started", self.info, kind="capacity", key=self.info.turn_id)
        waited = time.monotonic()
        entered = False
        try:
            entered = await self._until_stopped(self.admission.enter(user_id))
            return entered
        finally:
            observers.notify("wait_ended", self.info, kind="capacity", key=self.info.turn_id,
                             seconds=time.monotonic() - waited, outcome="started" if entered else "stopped")

    async def _drive_sdk(self) -> None:
        if not await self._take_a_slot():
            return
        healthy = False
        try:
            self.client = await self.pool.acquire(self.spec.session_point())
            observers.notify("client_acquired", self.info, warm=self.client.warm)
            if self.stop_requested.is_set():
                healthy = True
                return
            client = self.client
            client.binding.bind(self.binding)
            try:
                self.liveness.set_phase("thinking")
                self._querying = True
                await client.client.query(self.spec.prompt)
                async for message in client.client.receive_response():
                    self._note_activity(message)
                    message = await self.binding.whole_outputs.restore(message, self.adapter.is_mcp_call)
                    for chunk in self.adapter.feed(message):
                        self._note_chunk(chunk)
                        await self.emit(chunk)
                    if self.adapter.sdk_session_id and self.adapter.sdk_session_id != self.spec.sdk_session_id:
                        self.spec.sdk_session_id = self.adapter.sdk_session_id
                        await self.recorder.remember_sdk_session(self.spec.sdk_session_id)
                # A stopped turn takes its CLI along: whatever it still ran stops with it.
                healthy = self.adapter.outcome is not None and not self.stop_requested.is_set()
            finally:
                self._querying = False
                client.binding.unbind(self.binding)
        finally:
            self.admission.leave(self.spec.owner_id)
            if self.client is not None:
                if healthy:
                    self.client.served(turn_id=str(self.spec.turn_id), sdk_session_id=self.adapter.sdk_session_id)
                self.pool.release(self.client, healthy=healthy)

    def _note_activity(self, message: Any) -> None:
        self.liveness.sign_of_life()
        if isinstance(message, UserMessage):
            self.liveness.set_phase("thinking")  # tool results went back to the model
        elif isinstance(message, StreamEvent) and message.parent_tool_use_id is None:
            kind = message.event.get("type")
            if kind == "message_start":
                self.liveness.set_phase("thinking")
            elif kind == "content_block_delta":
                self.liveness.set_phase("streaming")

    def _note_chunk(self, chunk: Chunk) -> None:
        if chunk["type"] == "tool-input-available":
            self.liveness.tool_started(chunk["toolCallId"])
        elif is_tool_end(chunk):
            self.liveness.tool_ended(chunk["toolCallId"])

    def cancel_call(self, tool_call_id: str, reason: str) -> None:
        """End one running call of the copilot's own tools with `reason` as its result; the turn goes on.
        (A call waiting for approval is cancelled by deciding it: chat.engine.control.)"""
        self.binding.calls.cancel(tool_call_id, reason)

    async def request_stop(self) -> None:
        """Ask the SDK to interrupt the turn; the run loop then ends it as stopped."""
        self.stop_requested.set()
        self.adapter.begin_interrupt()
        await self.approvals.end_all(DecidedBy.STOP)
        client = self.client
        if client is not None and self._querying:
            try:
                await asyncio.wait_for(client.client.interrupt(), timeout=5)
            except Exception:
                logger.warning("%s interrupt failed; the turn will be cancelled", self.log_prefix, exc_info=True)
                raise

    def _stop_outcome(self) -> tuple[str, str]:
        """How a turn that was asked to stop ends: stopped, or failed when its time limit stopped it."""
        if self.time_limit_error:
            return TurnStatus.FAILED, self.time_limit_error
        return TurnStatus.STOPPED, ""

    async def _enforce_time_limit(self, run_task: asyncio.Task[None]) -> None:
        """Stop the turn through the stop path once it has run MAX_TURN_SECONDS; cancel it if it lingers."""
        limits = TurnLimits.from_settings()
        await asyncio.sleep(limits.max_turn_seconds)
        if self.stop_requested.is_set():
            return  # stopping already, by someone else's request
        self.time_limit_error = time_limit_reason(limits)
        logger.warning("%s %s", self.log_prefix, self.time_limit_error)
        try:
            await self.request_stop()
        except Exception:
            run_task.cancel()
            return
        await asyncio.sleep(TIME_LIMIT_STOP_GRACE_SECONDS)
        logger.warning("%s did not stop in %ss; cancelling it", self.log_prefix, TIME_LIMIT_STOP_GRACE_SECONDS)
        run_task.cancel()

    async def _keep_heartbeat(self) -> None:
        interval = max(1.0, copilot_setting("STALE_TURN_SECONDS") / 5)
        while True:
            await asyncio.sleep(interval)
            await touch_turn(turn_id=self.spec.turn_id)

    async def _finish(self, status: str, error: str) -> None:
        """Close everything still open, save the final state, then append `data-turn` and `finish`."""
        if self.finished:
            return
        self.finished = True
        await self.recorder.flush()  # what it holds goes first; a failure it kept is logged, not raised here
        for chunk in self.adapter.close_turn():
            await self.emit(chunk)
        if error:
            await self.emit(chunks.error(error))
        self.final_status = status
        self.usage = self.adapter.outcome.usage if self.adapter.outcome else None
        self.final_seq = await self.recorder.finish(status=status, error=error,
                                                    sdk_session_id=self.adapter.sdk_session_id, usage=self.usage)
        await self.liveness.stop()
        try:
            await liveness_board.publish(str(self.spec.session_id), idle())
        except Exception:
            logger.warning("%s could not publish its idle liveness", self.log_prefix, exc_info=True)
        logger.info("%s ended %s%s", self.log_prefix, status, f": {error}" if error else "")

    async def emit(self, chunk: Chunk) -> None:
        await self.recorder.record(chunk)

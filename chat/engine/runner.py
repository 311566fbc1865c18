"""Runs one turn: drives the SDK and hands each message's chunks to the turn's recorder (chat.engine.recording).

Whatever happens — the model's end, a stop, a crash of the CLI, the time limit, shutdown — a turn ends with its
open parts closed, its final state saved and exactly one `finish`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

from channels.db import database_sync_to_async
from claude_agent_sdk import ClaudeSDKClient

from chat.actions import turns as turn_actions
from chat.engine import observers
from chat.engine.adapter import TurnAdapter
from chat.engine.observers import TurnInfo
from chat.engine.options import tool_gate, turn_options
from chat.engine.policy import TurnLimits, time_limit_reason
from chat.engine.recording import TurnIds, TurnRecorder
from chat.engine.whole_outputs import WholeOutputs
from chat.events import chunks
from chat.events.chunks import Chunk
from chat.events.log import EventLog
from chat.models import TurnStatus
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
    model: str = ""  # empty: the MODEL setting
    max_budget_usd: float | None = None  # what the turn may spend (the SDK stops it past that)
    resume_session_at: str | None = None  # continue the SDK conversation from this entry (a branch)
    fork_session: bool = False  # …as a new SDK session, leaving the old one as it was


class TurnRunner:
    def __init__(self, spec: TurnSpec, event_log: EventLog) -> None:
        self.spec = spec
        self.adapter = TurnAdapter(max_event_output_chars=copilot_setting("TOOL_OUTPUT_EVENT_CHARS"))
        self.info = TurnInfo(session_id=str(spec.session_id), turn_id=str(spec.turn_id), user_id=spec.owner_id,
                             model=spec.model or copilot_setting("MODEL"))
        self.gate = tool_gate(session_id=str(spec.session_id), turn_id=str(spec.turn_id))
        self.recorder = TurnRecorder(TurnIds(spec.session_id, spec.turn_id, spec.assistant_message_id), event_log,
                                     self.adapter, info=self.info, denied=self.gate.denied)
        self.whole_outputs = WholeOutputs()
        self.stop_requested = asyncio.Event()
        self.shutting_down = False
        self.finished = False
        self.cli_pid: int | None = None
        self.final_seq: int | None = None  # the seq of this turn's `finish`, once appended
        self.time_limit_error = ""  # set when MAX_TURN_SECONDS stopped the turn
        self.final_status = TurnStatus.INTERRUPTED  # until the turn ends otherwise
        self.usage: dict | None = None
        self._client: ClaudeSDKClient | None = None

    @property
    def log_prefix(self) -> str:
        return f"session={self.spec.session_id} turn={self.spec.turn_id}"

    async def run(self) -> None:
        """Run the turn to its end. Whatever happens, it ends with its final state saved and one `finish`."""
        with observers.turn_scope(self.info):
            observers.notify("turn_started", self.info)
            try:
                await self._run()
            finally:
                observers.notify("turn_ended", self.info, status=self.final_status,
                                 seconds=time.monotonic() - self.recorder.started_at, usage=self.usage)

    async def _run(self) -> None:
        status, error = TurnStatus.COMPLETED, ""
        heartbeat = asyncio.create_task(self._keep_heartbeat(), name=f"heartbeat {self.spec.turn_id}")
        time_limit = asyncio.create_task(self._enforce_time_limit(asyncio.current_task()),
                                         name=f"time limit {self.spec.turn_id}")
        try:
            await self.emit(chunks.start(str(self.spec.assistant_message_id)))
            await self.emit(chunks.user_message(str(self.spec.user_message_id), self.spec.prompt))
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

    async def _drive_sdk(self) -> None:
        spec = self.spec
        options = turn_options(session_id=str(spec.session_id), sdk_session_id=spec.sdk_session_id,
                               turn_id=str(spec.turn_id), owner_id=spec.owner_id, whole_outputs=self.whole_outputs,
                               gate=self.gate, model=spec.model, max_budget_usd=spec.max_budget_usd,
                               resume_session_at=spec.resume_session_at, fork_session=spec.fork_session)
        async with ClaudeSDKClient(options) as client:
            self._client = client
            process = getattr(getattr(client, "_transport", None), "_process", None)
            self.cli_pid = getattr(process, "pid", None)
            logger.info("%s started the CLI (pid %s)", self.log_prefix, self.cli_pid)
            if self.stop_requested.is_set():
                return
            await client.query(self.spec.prompt)
            async for message in client.receive_response():
                message = await self.whole_outputs.restore(message, self.adapter.is_mcp_call)
                for chunk in self.adapter.feed(message):
                    await self.emit(chunk)
                if self.adapter.sdk_session_id and self.adapter.sdk_session_id != self.spec.sdk_session_id:
                    self.spec.sdk_session_id = self.adapter.sdk_session_id
                    await self.recorder.remember_sdk_session(self.spec.sdk_session_id)
        self._client = None

    async def request_stop(self) -> None:
        """Ask the SDK to interrupt the turn; the run loop then ends it as stopped."""
        self.stop_requested.set()
        self.adapter.begin_interrupt()
        client = self._client
        if client is not None:
            try:
                await asyncio.wait_for(client.interrupt(), timeout=5)
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
        interval = max(1.0, copilot_setting("STALE_TURN_SECONDS") / 4)
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
        logger.info("%s ended %s%s", self.log_prefix, status, f": {error}" if error else "")

    async def emit(self, chunk: Chunk) -> None:
        await self.recorder.record(chunk)

"""Runs one turn: drives the SDK, maps its messages to chunks, saves and appends each as it happens."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from channels.db import database_sync_to_async
from claude_agent_sdk import ClaudeSDKClient

from chat.actions import turns as turn_actions
from chat.conf import copilot_setting
from chat.engine.adapter import TurnAdapter
from chat.engine.options import turn_options
from chat.engine.policy import TurnLimits, record_denial, refused_by_cli, time_limit_reason
from chat.engine.throttle import DeltaThrottle
from chat.engine.whole_outputs import WholeOutputs
from chat.events import chunks
from chat.events.chunks import INTERRUPTED, Chunk
from chat.events.log import DurableWrite, InMemoryEventLog
from chat.models import ToolCallStatus, TurnStatus

logger = logging.getLogger(__name__)

TIME_LIMIT_STOP_GRACE_SECONDS = 5  # how long a turn stopped by its time limit may take to end before it is cancelled

record_tool_input = database_sync_to_async(turn_actions.do_record_tool_input)
record_tool_output = database_sync_to_async(turn_actions.do_record_tool_output)
save_message_parts = database_sync_to_async(turn_actions.do_save_message_parts)
finish_turn = database_sync_to_async(turn_actions.do_finish_turn)
touch_turn = database_sync_to_async(turn_actions.do_touch_turn)
record_turn_start = database_sync_to_async(turn_actions.do_record_turn_start)
record_sdk_session = database_sync_to_async(turn_actions.do_record_sdk_session)


@dataclass
class TurnSpec:
    """What a runner needs to know about its turn, read from the database before it starts."""

    turn_id: uuid.UUID
    session_id: uuid.UUID
    assistant_message_id: uuid.UUID
    user_message_id: uuid.UUID
    prompt: str
    sdk_session_id: str = ""
    owner_id: int | None = None  # the session's owner: the agent tools act for them


@dataclass
class TurnRunner:
    spec: TurnSpec
    event_log: InMemoryEventLog
    adapter: TurnAdapter = field(
        default_factory=lambda: TurnAdapter(max_event_output_chars=copilot_setting("TOOL_OUTPUT_EVENT_CHARS")))
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    whole_outputs: WholeOutputs = field(default_factory=WholeOutputs)
    shutting_down: bool = False
    finished: bool = False
    cli_pid: int | None = None
    final_seq: int | None = None  # the seq of this turn's `finish`, once appended
    time_limit_error: str = ""  # set when MAX_TURN_SECONDS stopped the turn
    _client: ClaudeSDKClient | None = None
    _throttle: DeltaThrottle = field(init=False)

    def __post_init__(self) -> None:
        self._throttle = DeltaThrottle(self._append, window=copilot_setting("DELTA_WINDOW_MS") / 1000)

    @property
    def log_prefix(self) -> str:
        return f"session={self.spec.session_id} turn={self.spec.turn_id}"

    async def run(self) -> None:
        """Run the turn to its end. Whatever happens, it ends with its final state saved and one `finish`."""
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
        options = turn_options(session_id=str(self.spec.session_id), sdk_session_id=self.spec.sdk_session_id,
                               turn_id=str(self.spec.turn_id), owner_id=self.spec.owner_id,
                               whole_outputs=self.whole_outputs)
        async with ClaudeSDKClient(options) as client:
            self._client = client
            process = getattr(getattr(client, "_transport", None), "_process", None)
            self.cli_pid = getattr(process, "pid", None)
            logger.info("%s started the CLI (pid %s)", self.log_prefix, self.cli_pid)
            if self.stop_requested.is_set():
                return
            await client.query(self.spec.prompt)
            async for message in client.receive_response():
                message = await self.whole_outputs.restore(message, self._is_mcp_call)
                for chunk in self.adapter.feed(message):
                    await self.emit(chunk)
                if self.adapter.sdk_session_id and self.adapter.sdk_session_id != self.spec.sdk_session_id:
                    self.spec.sdk_session_id = self.adapter.sdk_session_id
                    await record_sdk_session(session_id=self.spec.session_id, sdk_session_id=self.spec.sdk_session_id)
        self._client = None

    def _is_mcp_call(self, tool_use_id: str) -> bool:
        state = self.adapter.tool_calls.get(tool_use_id)
        return state is not None and state.name.startswith("mcp__")

    async def request_stop(self) -> None:
        """Ask the SDK to interrupt the turn; the run loop then ends it as stopped."""
        self.stop_requested.set()
        self.adapter.interrupting = True
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
        await self._throttle.close()  # what it holds goes first; a failure it kept is logged, not raised here
        for chunk in self.adapter.close():
            await self.emit(chunk)
        for tool_call_id in self.adapter.open_tool_call_ids():
            await self.emit(chunks.tool_output_error(tool_call_id, INTERRUPTED))
        for chunk in self.adapter.end_step():
            await self.emit(chunk)
        if error:
            await self.emit(chunks.error(error))
        sdk_session_id = self.adapter.sdk_session_id

        async def save_final_state(seq: int) -> bool:
            # False when a reaper ended the turn already: then no second `finish`.
            return await finish_turn(turn_id=self.spec.turn_id, status=status, error=error, seq=seq,
                                     sdk_session_id=sdk_session_id)

        appended = await self.event_log.append(
            str(self.spec.session_id), str(self.spec.turn_id),
            [chunks.turn_status(str(self.spec.turn_id), status), chunks.finish()], save_final_state)
        if appended:
            self.final_seq = appended[-1].seq
        logger.info("%s ended %s%s", self.log_prefix, status, f": {error}" if error else "")

    async def emit(self, chunk: Chunk) -> None:
        """Append a chunk to the session's log; a burst of deltas is merged first (DeltaThrottle)."""
        await self._throttle.put(chunk)

    async def _append(self, chunk: Chunk) -> None:
        """Append one chunk to the session's log, with the durable write it implies (if any)."""
        if chunk["type"] == "finish-step":
            calls = self.adapter.tool_calls.values()
            logger.info("%s step ended: %d tool calls resolved, %d unresolved", self.log_prefix,
                        sum(call.ended for call in calls), sum(not call.ended for call in calls))
        if chunk["type"] == "tool-output-error":
            self._record_cli_refusal(chunk)
        await self.event_log.append(str(self.spec.session_id), str(self.spec.turn_id), [chunk],
                                    self._durable_write(chunk))

    def _record_cli_refusal(self, chunk: Chunk) -> None:
        """Log and count a call the CLI refused because the policy never let it load the tool.

        The policy's gate never sees such a call, so this is its one record; calls the gate denied end with
        another error text and are recorded by the gate.
        """
        state = self.adapter.tool_calls.get(chunk["toolCallId"])
        if state is None:
            return
        denied = refused_by_cli(state.name, chunk["errorText"], TurnLimits.from_settings())
        if denied is not None:
            record_denial(str(self.spec.session_id), str(self.spec.turn_id), state.name, denied)

    def _durable_write(self, chunk: Chunk) -> DurableWrite | None:
        kind = chunk["type"]
        spec = self.spec
        if kind == "start":
            return lambda seq: record_turn_start(turn_id=spec.turn_id, seq=seq)
        if kind in {"text-end", "reasoning-end", "data-retry", "data-discard"}:
            parts = self.adapter.saved_parts()
            return lambda seq: save_message_parts(message_id=spec.assistant_message_id, parts=parts, seq=seq)
        if kind == "tool-input-available":
            state = self.adapter.tool_calls[chunk["toolCallId"]]
            return lambda seq: record_tool_input(
                turn_id=spec.turn_id, message_id=spec.assistant_message_id, tool_use_id=chunk["toolCallId"],
                name=chunk["toolName"], tool_input=chunk["input"], part_index=state.part_index, seq=seq)
        if kind in {"tool-output-available", "tool-output-error"}:
            tool_call_id = chunk["toolCallId"]
            self.adapter.mark_ended(tool_call_id)
            state = self.adapter.tool_calls.get(tool_call_id)
            if state is None or not state.input_available:
                return None  # never saved, so nothing to end in the database
            return lambda seq: self._record_output(chunk, seq)
        return None

    async def _record_output(self, chunk: Chunk, seq: int) -> bool:
        tool_call_id = chunk["toolCallId"]
        if chunk["type"] == "tool-output-available":
            state = self.adapter.tool_calls[tool_call_id]
            output = state.full_output if state.full_output is not None else chunk["output"]
            recorded = await record_tool_output(turn_id=self.spec.turn_id, tool_use_id=tool_call_id, seq=seq,
                                                output=output)
        else:
            status = ToolCallStatus.INTERRUPTED if chunk["errorText"] == INTERRUPTED else ToolCallStatus.FAILED
            recorded = await record_tool_output(turn_id=self.spec.turn_id, tool_use_id=tool_call_id, seq=seq,
                                                error_text=chunk["errorText"], status=status)
        if not recorded:
            logger.info("%s dropped a late or repeated output for %s", self.log_prefix, tool_call_id)
        return recorded


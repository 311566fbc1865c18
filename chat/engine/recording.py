"""What each chunk of a turn implies beyond its event: the durable write that goes with it, what the turn's
observers hear (chat.engine.observers), and the record of a call the CLI refused. The runner hands every chunk
here; this appends it to the session's event log.

Durable writes, each one statement (chat.actions.turns): `start` marks the turn's first seq; the end of a text
or reasoning part, a retry and a discard save the answer's parts; a complete tool input inserts the call; its
output or error ends it (dropped when it had ended already: a late or repeated output). Bursts of deltas are
merged first (DeltaThrottle).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async
from django.utils import timezone

from chat.actions import turns as turn_actions
from chat.actions.turns import TurnFigures
from chat.engine import observers
from chat.engine.adapter import TurnAdapter, truncated
from chat.engine.observers import TurnInfo
from chat.engine.policy import TurnLimits, record_denial, refused_by_cli
from chat.engine.throttle import DeltaThrottle
from chat.events import chunks
from chat.events.chunks import INTERRUPTED, Chunk, ToolEndChunk, is_tool_end
from chat.events.log import DurableWrite, EventLog
from chat.models import ToolCallStatus
from core.conf import copilot_setting
from core.db import hot_path_database

logger = logging.getLogger(__name__)

record_tool_input = hot_path_database(turn_actions.do_record_tool_input)
record_tool_output = hot_path_database(turn_actions.do_record_tool_output)
save_message_parts = hot_path_database(turn_actions.do_save_message_parts)
record_turn_start = hot_path_database(turn_actions.do_record_turn_start)
record_sdk_session = hot_path_database(turn_actions.do_record_sdk_session)
finish_turn = database_sync_to_async(turn_actions.do_finish_turn)

PART_SAVING_CHUNKS = frozenset({"text-end", "reasoning-end", "data-retry", "data-discard"})


@dataclass(frozen=True)
class TurnIds:
    session_id: uuid.UUID
    turn_id: uuid.UUID
    assistant_message_id: uuid.UUID

    def __str__(self) -> str:
        return f"session={self.session_id} turn={self.turn_id}"


def tool_end_status(chunk: ToolEndChunk, *, denied: bool) -> str:
    """completed, failed, denied, cancelled or interrupted: how a call ended, as metrics count it."""
    if chunk["type"] == "tool-output-available":
        return "completed"
    text = chunk["errorText"]
    if text.startswith("interrupted"):
        return "interrupted"
    if text.startswith("cancelled by the user"):
        return "cancelled"
    if denied or text.startswith("denied by the user"):
        return "denied"
    return "failed"


class TurnRecorder:
    """Appends one turn's chunks to its session's log, each with the durable write it implies, and tells the
    turn's observers what happened."""

    def __init__(self, ids: TurnIds, event_log: EventLog, adapter: TurnAdapter, *, info: TurnInfo,
                 denied: Callable[[str], bool] = lambda tool_call_id: False) -> None:
        self.ids = ids
        self.event_log = event_log
        self.adapter = adapter  # read only: the parts and calls the writes save
        self.info = info
        self._denied = denied  # whether the policy denied a call, by its id
        self._throttle = DeltaThrottle(self._append, window=copilot_setting("DELTA_WINDOW_MS") / 1000)
        self.started_at = time.monotonic()
        self.first_token_at: datetime | None = None
        self.model_retries = 0
        self.policy_denials = 0
        self._calls_started: dict[str, float] = {}
        self._inputs_recorded: dict[str, asyncio.Event] = {}  # by tool_use_id: its tool-input-available is appended

    async def record(self, chunk: Chunk) -> None:
        self._observe(chunk)
        await self._throttle.put(chunk)

    def _observe(self, chunk: Chunk) -> None:
        kind = chunk["type"]
        if kind in {"text-delta", "reasoning-delta"} and self.first_token_at is None:
            self.first_token_at = timezone.now()
            observers.notify("first_token", self.info, seconds=time.monotonic() - self.started_at)
        elif kind == "tool-input-available":
            self._calls_started.setdefault(chunk["toolCallId"], time.monotonic())
            observers.notify("tool_call_started", self.info, tool_call_id=chunk["toolCallId"],
                             tool_name=chunk["toolName"])
        elif is_tool_end(chunk) and chunk["toolCallId"] in self._calls_started:
            tool_call_id = chunk["toolCallId"]
            status = tool_end_status(chunk, denied=self._denied(tool_call_id) or self._refused_by_cli(chunk))
            self.policy_denials += status == "denied"
            state = self.adapter.tool_calls.get(tool_call_id)
            observers.notify("tool_call_ended", self.info, tool_call_id=tool_call_id,
                             tool_name=state.name if state else "", status=status,
                             seconds=time.monotonic() - self._calls_started.pop(tool_call_id))
        elif kind == "data-retry":
            self.model_retries += 1
            observers.notify("model_retry", self.info, attempt=chunk["data"]["attempt"],
                             status=chunk["data"]["status"])

    async def flush(self) -> None:
        """Send what the delta throttle holds; chunks pass straight through from now on."""
        await self._throttle.close()

    async def remember_sdk_session(self, sdk_session_id: str) -> None:
        """The SDK conversation, saved as soon as it exists: even a turn whose process dies continues it."""
        await record_sdk_session(session_id=self.ids.session_id, sdk_session_id=sdk_session_id,
                                 turn_id=self.ids.turn_id)

    async def finish(self, *, status: str, error: str, sdk_session_id: str,
                     usage: dict[str, Any] | None) -> int | None:
        """Save the turn's end, then append `data-usage` (when the CLI reported it), `data-turn` and `finish`;
        returns the seq of `finish`, None when a reaper had ended the turn already (then no second `finish`)."""
        figures = TurnFigures(first_token_at=self.first_token_at, model_retries=self.model_retries,
                              policy_denials=self.policy_denials, usage=usage)

        async def save_final_state(seq: int) -> bool:
            return await finish_turn(turn_id=self.ids.turn_id, status=status, error=error, seq=seq,
                                     sdk_session_id=sdk_session_id, figures=figures)

        closing = [chunks.usage(usage)] if usage is not None else []
        appended = await self.event_log.append(
            str(self.ids.session_id), str(self.ids.turn_id),
            [*closing, chunks.turn_status(str(self.ids.turn_id), status), chunks.finish()], save_final_state)
        return appended[-1].seq if appended else None

    async def _append(self, chunk: Chunk) -> None:
        if chunk["type"] == "finish-step":
            calls = self.adapter.tool_calls.values()
            logger.info("%s step ended: %d tool calls resolved, %d unresolved", self.ids,
                        sum(call.ended for call in calls), sum(not call.ended for call in calls))
        if chunk["type"] == "tool-output-error":
            self._record_cli_refusal(chunk)
        await self.event_log.append(str(self.ids.session_id), str(self.ids.turn_id), [chunk],
                                    self.durable_write(chunk))
        if chunk["type"] == "tool-input-available":
            self._input_event(chunk["toolCallId"]).set()

    def _input_event(self, tool_use_id: str) -> asyncio.Event:
        return self._inputs_recorded.setdefault(tool_use_id, asyncio.Event())

    async def input_recorded(self, tool_use_id: str, timeout: float = 30) -> None:
        """Returns once the call's `tool-input-available` is in the log (what follows it must come after)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._input_event(tool_use_id).wait(), timeout)

    def durable_write(self, chunk: Chunk) -> DurableWrite | None:
        kind, ids = chunk["type"], self.ids
        if kind == "start":
            return lambda seq: record_turn_start(turn_id=ids.turn_id, seq=seq)
        if kind in PART_SAVING_CHUNKS:
            parts = self.adapter.saved_parts()
            return lambda seq: save_message_parts(message_id=ids.assistant_message_id, parts=parts, seq=seq)
        if kind == "tool-input-available":
            state = self.adapter.tool_calls[chunk["toolCallId"]]
            return lambda seq: record_tool_input(
                turn_id=ids.turn_id, message_id=ids.assistant_message_id, tool_use_id=chunk["toolCallId"],
                name=chunk["toolName"], tool_input=chunk["input"], part_index=state.part_index, seq=seq)
        if is_tool_end(chunk):
            state = self.adapter.tool_calls.get(chunk["toolCallId"])
            if state is None or not state.input_available:
                return None  # never saved, so nothing to end in the database
            return lambda seq: self._record_output(chunk, seq)
        return None

    async def _record_output(self, chunk: ToolEndChunk, seq: int) -> bool:
        tool_call_id = chunk["toolCallId"]
        if chunk["type"] == "tool-output-available":
            state = self.adapter.tool_calls[tool_call_id]
            output = truncated(state.full_output if state.full_output is not None else chunk["output"],
                               copilot_setting("TOOL_OUTPUT_STORED_CHARS"),
                               note="the first {limit:,} are saved (TOOL_OUTPUT_STORED_CHARS).")
            recorded = await record_tool_output(turn_id=self.ids.turn_id, tool_use_id=tool_call_id, seq=seq,
                                                output=output)
        else:
            status = ToolCallStatus.INTERRUPTED if chunk["errorText"] == INTERRUPTED else ToolCallStatus.FAILED
            recorded = await record_tool_output(turn_id=self.ids.turn_id, tool_use_id=tool_call_id, seq=seq,
                                                error_text=chunk["errorText"], status=status)
        if not recorded:
            logger.info("%s dropped a late or repeated output for %s", self.ids, tool_call_id)
        return recorded

    def _refused_by_cli(self, chunk: Chunk) -> bool:
        state = self.adapter.tool_calls.get(chunk["toolCallId"])
        return (chunk["type"] == "tool-output-error" and state is not None
                and refused_by_cli(state.name, chunk["errorText"], TurnLimits.from_settings()) is not None)

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
            record_denial(str(self.ids.session_id), str(self.ids.turn_id), state.name, denied)

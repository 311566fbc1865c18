"""The one place that maps Claude Agent SDK messages to UI-message-stream chunks.

Pure and synchronous: it keeps the turn's stream state and returns chunks; it saves and sends nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from chat.events import chunks
from chat.events.chunks import Chunk

RETRIED_AWAY = "interrupted: the model's answer was cut off and retried"
BUDGET_REACHED = ("stopped: this turn used up what was left of today's budget (USER_DAILY_BUDGET_USD); "
                  "it renews at midnight UTC")


@dataclass
class OpenBlock:
    kind: str  # "text", "reasoning" or "tool"
    part_id: str


@dataclass
class ToolCallState:
    name: str
    part_index: int
    input_available: bool = False
    ended: bool = False
    full_output: Any = None  # kept whole for the database when the event carries a truncated copy


@dataclass
class TurnOutcome:
    """How the SDK said the turn ended: set once a ResultMessage arrives."""

    is_error: bool
    error_text: str = ""
    sdk_session_id: str = ""
    usage: dict[str, Any] | None = None  # tokens and cost, as PROTOCOL §8 shows them


@dataclass
class TurnAdapter:
    """Turns one turn's SDK messages into chunks, in order, each exactly once."""

    step_open: bool = False
    open_blocks: dict[int, OpenBlock] = field(default_factory=dict)
    attempt_part_ids: list[str] = field(default_factory=list)
    tool_calls: dict[str, ToolCallState] = field(default_factory=dict)
    text_parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_part_index: int = 0
    outcome: TurnOutcome | None = None
    sdk_session_id: str = ""
    api_error_text: str = ""
    max_event_output_chars: int = 64 * 1024
    interrupting: bool = False  # set by begin_interrupt: calls the CLI cuts short then end as "interrupted"

    def feed(self, message: Any) -> list[Chunk]:
        if isinstance(message, StreamEvent):
            return [] if message.parent_tool_use_id else self._stream_event(message.event)
        if isinstance(message, AssistantMessage):
            return [] if message.parent_tool_use_id else self._assistant_message(message)
        if isinstance(message, UserMessage):
            return [] if message.parent_tool_use_id else self._user_message(message)
        if isinstance(message, SystemMessage):
            return self._system_message(message)
        if isinstance(message, ResultMessage):
            self._result_message(message)
        return []

    # --- stream events: live text and the first sight of each tool call ---

    def _stream_event(self, event: dict[str, Any]) -> list[Chunk]:
        kind = event.get("type")
        if kind == "message_start":
            out = [chunks.finish_step()] if self.step_open else []
            self.step_open = True
            self.open_blocks.clear()
            self.attempt_part_ids = []
            return out + [chunks.start_step()]
        if kind == "content_block_start":
            return self._block_start(event.get("index", 0), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(event.get("index", 0), event.get("delta") or {})
        if kind == "content_block_stop":
            return self._block_stop(event.get("index", 0))
        if kind == "message_delta" and (event.get("delta") or {}).get("stop_reason"):
            self.attempt_part_ids = []  # the answer arrived whole: nothing of it is ever discarded
        return []

    def _new_part_index(self) -> int:
        index = self.next_part_index
        self.next_part_index += 1
        return index

    def _block_start(self, index: int, block: dict[str, Any]) -> list[Chunk]:
        block_type = block.get("type")
        if block_type == "text":
            part_index = self._new_part_index()
            part_id = f"text-{part_index}"
            self.open_blocks[index] = OpenBlock("text", part_id)
            self.text_parts[part_id] = {"type": "text", "index": part_index, "text": block.get("text") or ""}
            self.attempt_part_ids.append(part_id)
            return [chunks.text_start(part_id)]
        if block_type == "thinking":
            part_index = self._new_part_index()
            part_id = f"reasoning-{part_index}"
            self.open_blocks[index] = OpenBlock("reasoning", part_id)
            self.text_parts[part_id] = {"type": "reasoning", "index": part_index, "text": ""}
            self.attempt_part_ids.append(part_id)
            return [chunks.reasoning_start(part_id)]
        if block_type == "tool_use" and block.get("id"):
            tool_call_id = block["id"]
            self.open_blocks[index] = OpenBlock("tool", tool_call_id)
            if tool_call_id in self.tool_calls:
                return []
            self.tool_calls[tool_call_id] = ToolCallState(name=block.get("name", ""), part_index=self._new_part_index())
            self.attempt_part_ids.append(tool_call_id)
            return [chunks.tool_input_start(tool_call_id, block.get("name", ""))]
        return []

    def _block_delta(self, index: int, delta: dict[str, Any]) -> list[Chunk]:
        block = self.open_blocks.get(index)
        if block is None:
            return []
        if block.kind == "text" and delta.get("type") == "text_delta" and delta.get("text"):
            self.text_parts[block.part_id]["text"] += delta["text"]
            return [chunks.text_delta(block.part_id, delta["text"])]
        if block.kind == "reasoning" and delta.get("type") == "thinking_delta" and delta.get("thinking"):
            self.text_parts[block.part_id]["text"] += delta["thinking"]
            return [chunks.reasoning_delta(block.part_id, delta["thinking"])]
        return []

    def _block_stop(self, index: int) -> list[Chunk]:
        block = self.open_blocks.pop(index, None)
        if block is None:
            return []
        if block.kind == "text":
            return [chunks.text_end(block.part_id)]
        if block.kind == "reasoning":
            return [chunks.reasoning_end(block.part_id)]
        return []

    # --- whole messages: complete tool inputs, tool results, retries, the result ---

    def _assistant_message(self, message: AssistantMessage) -> list[Chunk]:
        self.sdk_session_id = message.session_id or self.sdk_session_id
        out: list[Chunk] = []
        if message.error is not None:
            # The CLI gave up on the model: this message is its error report, and what the cut attempt
            # streamed before it is not part of the answer.
            self.api_error_text = " ".join(getattr(b, "text", "") for b in message.content).strip() or str(message.error)
            discard = list(self.attempt_part_ids)
            out.extend(self._discard_cut_attempt())
            if discard:
                out.append(chunks.discard(discard))
            return out
        for block in message.content:
            if not isinstance(block, ToolUseBlock):
                continue
            state = self.tool_calls.get(block.id)
            if state is None:
                state = self.tool_calls[block.id] = ToolCallState(name=block.name, part_index=self._new_part_index())
                out.append(chunks.tool_input_start(block.id, block.name))
            if not state.input_available:
                state.input_available = True
                out.append(chunks.tool_input_available(block.id, block.name, block.input))
        return out

    def _user_message(self, message: UserMessage) -> list[Chunk]:
        if isinstance(message.content, str):
            return []
        out: list[Chunk] = []
        for block in message.content:
            if not isinstance(block, ToolResultBlock):
                continue
            state = self.tool_calls.get(block.tool_use_id)
            if state is None or state.ended or not state.input_available:
                continue  # unknown, late or repeated: never shown twice
            state.ended = True
            if block.is_error:
                error_text = chunks.INTERRUPTED if self.interrupting else refusal_reason(tool_result_text(block.content))
                out.append(chunks.tool_output_error(block.tool_use_id, error_text))
            else:
                state.full_output = tool_result_value(block.content)
                out.append(chunks.tool_output_available(
                    block.tool_use_id, truncated_for_event(state.full_output, self.max_event_output_chars)))
        return out

    def _system_message(self, message: SystemMessage) -> list[Chunk]:
        data = message.data or {}
        if message.subtype == "init":
            self.sdk_session_id = data.get("session_id") or self.sdk_session_id
            return []
        if message.subtype != "api_retry":
            return []
        discard = list(self.attempt_part_ids)
        out = self._discard_cut_attempt()
        out.append(chunks.retry(
            attempt=int(data.get("attempt") or 0), max_retries=int(data.get("max_retries") or 0),
            delay_ms=int(data.get("retry_delay_ms") or 0), status=data.get("error_status"), discard=discard,
        ))
        return out

    def _discard_cut_attempt(self) -> list[Chunk]:
        """Forget the parts the current, cut, model attempt streamed; returns the chunks that close them."""
        out: list[Chunk] = []
        for part_id in self.attempt_part_ids:
            self.text_parts.pop(part_id, None)
            state = self.tool_calls.get(part_id)
            if state is not None and not state.ended and state.input_available:
                # The call was shown whole before the cut; the retry asks the model afresh.
                state.ended = True
                out.append(chunks.tool_output_error(part_id, RETRIED_AWAY))
            elif state is not None:
                state.ended = True
        for index, block in list(self.open_blocks.items()):
            if block.kind in {"text", "reasoning"}:
                out.extend(self._block_stop(index))
        self.open_blocks.clear()
        self.attempt_part_ids = []
        return out

    def _result_message(self, message: ResultMessage) -> None:
        self.sdk_session_id = message.session_id or self.sdk_session_id
        is_error = bool(message.is_error) or message.subtype != "success"
        error_text = ""
        if message.subtype == "error_max_budget_usd":
            error_text = BUDGET_REACHED
        elif is_error:
            error_text = self.api_error_text or (message.result or "") or message.subtype
        self.outcome = TurnOutcome(is_error=is_error, error_text=error_text, sdk_session_id=self.sdk_session_id,
                                   usage=usage_of(message))

    # --- stopping, and the end of the turn ---

    def begin_interrupt(self) -> None:
        """The turn is being stopped: calls the CLI cuts short from now on end as interrupted, not failed."""
        self.interrupting = True

    def close_turn(self) -> list[Chunk]:
        """What ends the turn's stream: open text closed, every open tool call ended as interrupted (each
        exactly once), then the step."""
        out: list[Chunk] = []
        for index in sorted(self.open_blocks):
            out.extend(self._block_stop(index))
        for tool_call_id, state in self.tool_calls.items():
            if not state.ended:
                state.ended = True
                out.append(chunks.tool_output_error(tool_call_id, chunks.INTERRUPTED))
        if self.step_open:
            self.step_open = False
            out.append(chunks.finish_step())
        return out

    # --- what the recording of a chunk reads ---

    def saved_parts(self) -> list[dict[str, Any]]:
        return sorted(self.text_parts.values(), key=lambda part: part["index"])

    def is_mcp_call(self, tool_use_id: str) -> bool:
        state = self.tool_calls.get(tool_use_id)
        return state is not None and state.name.startswith("mcp__")


USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def usage_of(result: ResultMessage) -> dict[str, Any] | None:
    """The turn's tokens and cost from the CLI's result; None when it reported neither."""
    if result.usage is None and result.total_cost_usd is None:
        return None
    usage = result.usage or {}
    return {**{name: int(usage.get(name) or 0) for name in USAGE_FIELDS},
            "cost_usd": float(result.total_cost_usd or 0)}


def truncated_for_event(output: Any, limit: int) -> Any:
    """The output itself when it is small; else its first `limit` characters and a clear note."""
    return truncated(output, limit, note="the first {limit:,} are shown. It is saved whole.")


def truncated(output: Any, limit: int, *, note: str) -> Any:
    """The output itself when it has at most `limit` characters as JSON; else a preview of them, saying so."""
    text = output if isinstance(output, str) else json.dumps(output, default=str)
    if len(text) <= limit:
        return output
    return {"truncated": True, "total_chars": len(text), "preview": text[:limit],
            "note": f"The output has {len(text):,} characters; " + note.format(limit=limit)}


HOOK_REFUSAL = re.compile(r"^PreToolUse:\S+ hook error: ")


def refusal_reason(error_text: str) -> str:
    """The reason our PreToolUse hook gave for refusing a call, as it gave it: the CLI puts its own words first
    ("PreToolUse:<tool> hook error: …"); the chat shows ours (PROTOCOL §7: "denied by the user", …)."""
    return HOOK_REFUSAL.sub("", error_text, count=1)


def tool_result_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        if texts:
            return "\n".join(texts)
    return json.dumps(content, default=str)


def tool_result_value(content: Any) -> Any:
    """A tool's output as the client should see it: its JSON when the text is JSON, else the text."""
    text = tool_result_text(content)
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return text

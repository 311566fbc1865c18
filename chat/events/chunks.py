"""The UI-message-stream chunks we emit (Vercel AI SDK protocol v1, PROTOCOL §2): one TypedDict per type, and
its builder. Every chunk the server sends is built here, so their shapes live in one place.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

INTERRUPTED = "interrupted: the turn ended before this tool call finished"


class StartChunk(TypedDict):
    type: Literal["start"]
    messageId: str


class StepChunk(TypedDict):
    type: Literal["start-step", "finish-step"]


class PartChunk(TypedDict):
    """text-start / text-end / reasoning-start / reasoning-end."""

    type: Literal["text-start", "text-end", "reasoning-start", "reasoning-end"]
    id: str


class DeltaChunk(TypedDict):
    type: Literal["text-delta", "reasoning-delta"]
    id: str
    delta: str


class ToolInputStartChunk(TypedDict):
    type: Literal["tool-input-start"]
    toolCallId: str
    toolName: str
    dynamic: Literal[True]


class ToolInputChunk(TypedDict):
    type: Literal["tool-input-available"]
    toolCallId: str
    toolName: str
    input: Any
    dynamic: Literal[True]


class ToolOutputChunk(TypedDict):
    type: Literal["tool-output-available"]
    toolCallId: str
    output: Any
    dynamic: Literal[True]


class ToolErrorChunk(TypedDict):
    type: Literal["tool-output-error"]
    toolCallId: str
    errorText: str
    dynamic: Literal[True]


class ErrorChunk(TypedDict):
    type: Literal["error"]
    errorText: str


class FinishChunk(TypedDict):
    type: Literal["finish"]


class DataChunk(TypedDict):
    """`data-<name>`: anything of our own (turn status, retries, background reports…)."""

    type: str
    data: Any
    transient: NotRequired[bool]


Chunk = (StartChunk | StepChunk | PartChunk | DeltaChunk | ToolInputStartChunk | ToolInputChunk | ToolOutputChunk
         | ToolErrorChunk | ErrorChunk | FinishChunk | DataChunk)
ToolEndChunk = ToolOutputChunk | ToolErrorChunk


def start(message_id: str) -> StartChunk:
    return {"type": "start", "messageId": message_id}


def start_step() -> StepChunk:
    return {"type": "start-step"}


def finish_step() -> StepChunk:
    return {"type": "finish-step"}


def text_start(part_id: str) -> PartChunk:
    return {"type": "text-start", "id": part_id}


def text_delta(part_id: str, delta: str) -> DeltaChunk:
    return {"type": "text-delta", "id": part_id, "delta": delta}


def text_end(part_id: str) -> PartChunk:
    return {"type": "text-end", "id": part_id}


def reasoning_start(part_id: str) -> PartChunk:
    return {"type": "reasoning-start", "id": part_id}


def reasoning_delta(part_id: str, delta: str) -> DeltaChunk:
    return {"type": "reasoning-delta", "id": part_id, "delta": delta}


def reasoning_end(part_id: str) -> PartChunk:
    return {"type": "reasoning-end", "id": part_id}


def tool_input_start(tool_call_id: str, tool_name: str) -> ToolInputStartChunk:
    return {"type": "tool-input-start", "toolCallId": tool_call_id, "toolName": tool_name, "dynamic": True}


def tool_input_available(tool_call_id: str, tool_name: str, tool_input: Any) -> ToolInputChunk:
    return {"type": "tool-input-available", "toolCallId": tool_call_id, "toolName": tool_name,
            "input": tool_input, "dynamic": True}


def tool_output_available(tool_call_id: str, output: Any) -> ToolOutputChunk:
    return {"type": "tool-output-available", "toolCallId": tool_call_id, "output": output, "dynamic": True}


def tool_output_error(tool_call_id: str, error_text: str) -> ToolErrorChunk:
    return {"type": "tool-output-error", "toolCallId": tool_call_id, "errorText": error_text, "dynamic": True}


def error(error_text: str) -> ErrorChunk:
    return {"type": "error", "errorText": error_text}


def finish() -> FinishChunk:
    return {"type": "finish"}


def data(name: str, payload: Any) -> DataChunk:
    return {"type": f"data-{name}", "data": payload}


def user_message(message_id: str, text: str, **where: Any) -> DataChunk:
    """The turn's prompt; `where` says where it sits in the conversation (parent_id, branch, answer_branch)."""
    return data("user-message", {"message_id": message_id, "text": text, **where})


def turn_status(turn_id: str, status: str) -> DataChunk:
    return data("turn", {"turn_id": turn_id, "status": status})


def retry(*, attempt: int, max_retries: int, delay_ms: int, status: int | None, discard: list[str]) -> DataChunk:
    return data("retry", {"attempt": attempt, "max_retries": max_retries, "delay_ms": delay_ms,
                          "status": status, "discard": discard})


def usage(totals: dict[str, Any]) -> DataChunk:
    """A turn's tokens and cost (PROTOCOL §8), just before its `data-turn`."""
    return data("usage", totals)


def discard(part_ids: list[str]) -> DataChunk:
    """The model's last attempt was cut and not retried: clients remove these parts."""
    return data("discard", {"discard": part_ids})


def is_tool_end(chunk: Chunk) -> bool:
    return chunk["type"] in {"tool-output-available", "tool-output-error"}

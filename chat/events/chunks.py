"""Builders for the UI-message-stream chunks we emit (Vercel AI SDK protocol v1), one per type.

Every chunk the server sends is built here, so their shapes live in one place.
"""

from __future__ import annotations

from typing import Any

Chunk = dict[str, Any]


def start(message_id: str) -> Chunk:
    return {"type": "start", "messageId": message_id}


def start_step() -> Chunk:
    return {"type": "start-step"}


def finish_step() -> Chunk:
    return {"type": "finish-step"}


def text_start(part_id: str) -> Chunk:
    return {"type": "text-start", "id": part_id}


def text_delta(part_id: str, delta: str) -> Chunk:
    return {"type": "text-delta", "id": part_id, "delta": delta}


def text_end(part_id: str) -> Chunk:
    return {"type": "text-end", "id": part_id}


def reasoning_start(part_id: str) -> Chunk:
    return {"type": "reasoning-start", "id": part_id}


def reasoning_delta(part_id: str, delta: str) -> Chunk:
    return {"type": "reasoning-delta", "id": part_id, "delta": delta}


def reasoning_end(part_id: str) -> Chunk:
    return {"type": "reasoning-end", "id": part_id}


def tool_input_start(tool_call_id: str, tool_name: str) -> Chunk:
    return {"type": "tool-input-start", "toolCallId": tool_call_id, "toolName": tool_name, "dynamic": True}


def tool_input_available(tool_call_id: str, tool_name: str, tool_input: Any) -> Chunk:
    return {"type": "tool-input-available", "toolCallId": tool_call_id, "toolName": tool_name,
            "input": tool_input, "dynamic": True}


def tool_output_available(tool_call_id: str, output: Any) -> Chunk:
    return {"type": "tool-output-available", "toolCallId": tool_call_id, "output": output, "dynamic": True}


def tool_output_error(tool_call_id: str, error_text: str) -> Chunk:
    return {"type": "tool-output-error", "toolCallId": tool_call_id, "errorText": error_text, "dynamic": True}


def error(error_text: str) -> Chunk:
    return {"type": "error", "errorText": error_text}


def finish() -> Chunk:
    return {"type": "finish"}


def data(name: str, payload: Any) -> Chunk:
    return {"type": f"data-{name}", "data": payload}


def user_message(message_id: str, text: str) -> Chunk:
    return data("user-message", {"message_id": message_id, "text": text})


def turn_status(turn_id: str, status: str) -> Chunk:
    return data("turn", {"turn_id": turn_id, "status": status})


def retry(*, attempt: int, max_retries: int, delay_ms: int, status: int | None, discard: list[str]) -> Chunk:
    return data("retry", {"attempt": attempt, "max_retries": max_retries, "delay_ms": delay_ms,
                          "status": status, "discard": discard})


def discard(part_ids: list[str]) -> Chunk:
    """The model's last attempt was cut and not retried: clients remove these parts."""
    return data("discard", {"discard": part_ids})


INTERRUPTED = "interrupted: the turn ended before this tool call finished"

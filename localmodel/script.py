"""The `#script` language: find the script in a conversation and pick the step to play."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

SCRIPT_MARKER = "#script "
FAULTS = {"overloaded", "api_error", "drop"}
ECHOES = {"user_messages"}


class ScriptError(ValueError):
    """A `#script` line that is not a JSON list of step objects."""


@dataclass(frozen=True)
class ToolRequest:
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Step:
    text: str = ""
    tools: tuple[ToolRequest, ...] = ()
    delay_ms: int = 0
    error: str | None = None
    error_times: int | None = None  # None: fail every time
    echo: str | None = None  # "user_messages": the text is the request's user messages, as JSON

    @classmethod
    def parse(cls, raw: Any) -> Step:
        if not isinstance(raw, dict):
            raise ScriptError(f"a step must be an object, not {raw!r}")
        unknown = set(raw) - {"text", "tools", "delay_ms", "error", "error_times", "echo"}
        if unknown:
            raise ScriptError(f"unknown step fields: {sorted(unknown)}")
        error = raw.get("error")
        if error is not None and error not in FAULTS:
            raise ScriptError(f"unknown error {error!r}; expected one of {sorted(FAULTS)}")
        echo = raw.get("echo")
        if echo is not None and echo not in ECHOES:
            raise ScriptError(f"unknown echo {echo!r}; expected one of {sorted(ECHOES)}")
        tools = []
        for tool in raw.get("tools") or []:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise ScriptError(f"a tool needs a name: {tool!r}")
            tools.append(ToolRequest(name=tool["name"], input=dict(tool.get("input") or {})))
        return cls(
            text=str(raw.get("text") or ""),
            tools=tuple(tools),
            delay_ms=int(raw.get("delay_ms") or 0),
            error=error,
            error_times=raw.get("error_times"),
            echo=echo,
        )

    def played(self, messages: list[dict[str, Any]]) -> Step:
        """The step as this request plays it: an `echo` step says what conversation the model was given."""
        if self.echo != "user_messages":
            return self
        return replace(self, text=json.dumps(user_message_texts(messages)), echo=None)


@dataclass(frozen=True)
class ScriptPosition:
    """Which step of which script a model request should play."""

    steps: tuple[Step, ...]
    index: int
    # Identifies the conversation up to the scripted user message, for counting faults.
    anchor: str = field(default="")

    @property
    def step(self) -> Step | None:
        return self.steps[self.index] if self.index < len(self.steps) else None


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(block.get("text", ""))
    return "\n".join(parts)


def is_tool_result_message(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )


def prompt_text(message: dict[str, Any]) -> str:
    """What the person wrote in a user message: its text blocks, without the reminders the CLI adds to them."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(block.get("text", "") for block in content or []
                     if isinstance(block, dict) and block.get("type") == "text"
                     and not block.get("text", "").lstrip().startswith("<system-reminder>"))


def user_message_texts(messages: list[dict[str, Any]]) -> list[str]:
    """The texts of the request's user messages (tool results left out), oldest first."""
    return [prompt_text(message) for message in messages
            if message.get("role") == "user" and not is_tool_result_message(message) and prompt_text(message).strip()]


def parse_script(text: str) -> tuple[Step, ...] | None:
    """The steps of the last `#script` line in `text`, or None when there is none."""
    script_line = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(SCRIPT_MARKER):
            script_line = stripped[len(SCRIPT_MARKER):]
    if script_line is None:
        return None
    try:
        raw = json.loads(script_line)
    except json.JSONDecodeError as exc:
        raise ScriptError(f"the script is not JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise ScriptError("a script is a JSON list of steps")
    return tuple(Step.parse(step) for step in raw)


def last_prompt_index(messages: list[dict[str, Any]]) -> int | None:
    """Index of the newest user message that is a prompt (not only tool results)."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") == "user" and not is_tool_result_message(message):
            if message_text(message).strip():
                return index
    return None


def locate(messages: list[dict[str, Any]]) -> ScriptPosition | None:
    """The script step this request plays, or None for an unscripted conversation."""
    prompt_index = last_prompt_index(messages)
    if prompt_index is None:
        return None
    steps = parse_script(message_text(messages[prompt_index]))
    if steps is None:
        return None
    rounds = sum(
        1 for message in messages[prompt_index + 1:]
        if message.get("role") == "user" and is_tool_result_message(message)
    )
    anchor = json.dumps(messages[: prompt_index + 1], sort_keys=True, default=str)
    return ScriptPosition(steps=steps, index=rounds, anchor=anchor)

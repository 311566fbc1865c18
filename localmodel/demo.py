"""What the local model says when no `#script` tells it what to do."""

from __future__ import annotations

import json
import re
from typing import Any

from localmodel.script import Step, ToolRequest, message_text

WAIT_REQUEST = re.compile(r"\bwait\s+(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds?)?\b", re.I)
BLOCKS_REQUEST = re.compile(r"\b(list|show|which|what)\b.*\bblocks?\b", re.I)
TITLE_REQUEST = re.compile(r"^\s*write a (short )?title\b", re.I)  # how a system prompt asks for a chat's title
LABEL = re.compile(r"^\s*\w+:\s*")
TITLE_WORDS = 6
COPILOT_TOOL = "mcp__copilot__{}"

HELP_TEXT = (
    "Hello! I am the local model, a stand-in for Claude that runs on this machine. "
    "Ask me to *list blocks*, or to *wait 2 seconds*, and I will use the copilot's tools. "
    "To play an exact scenario, put a line `#script [...]` in your message."
)


def system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    return "\n".join(block.get("text", "") for block in system or [] if isinstance(block, dict))


def demo_step(messages: list[dict[str, Any]], prompt_index: int | None, *, system: Any = None) -> Step:
    """A deterministic reply to the conversation, calling tools when asked to; asked for a title (the system
    prompt starts "Write a title"), the first words of the user's first line, in Title Case."""
    if prompt_index is None:
        return Step(text=HELP_TEXT)
    prompt = message_text(messages[prompt_index])
    if TITLE_REQUEST.match(system_text(system)):
        first_line = next((line for line in prompt.splitlines() if line.strip()), "")
        return Step(text=" ".join(word.capitalize() for word in LABEL.sub("", first_line).split()[:TITLE_WORDS]))
    results = _tool_results_since(messages, prompt_index)
    if results:
        return Step(text="Done. " + " ".join(_describe(result) for result in results))
    wait = WAIT_REQUEST.search(prompt)
    if wait:
        seconds = float(wait.group(1))
        seconds = int(seconds) if seconds.is_integer() else seconds
        return Step(
            text=f"I'll wait {seconds} seconds.",
            tools=(ToolRequest(COPILOT_TOOL.format("run_block"),
                               {"block": "wait", "input": {"seconds": seconds}}),),
        )
    if BLOCKS_REQUEST.search(prompt):
        return Step(text="Let me look.", tools=(ToolRequest(COPILOT_TOOL.format("list_blocks"), {}),))
    return Step(text=f"You said: {prompt.strip()[:500]}\n\n{HELP_TEXT}")


def _tool_results_since(messages: list[dict[str, Any]], prompt_index: int) -> list[Any]:
    results = []
    for message in messages[prompt_index + 1:]:
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list):
            continue
        results.extend(b for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
    return results


def _describe(result: dict[str, Any]) -> str:
    content = result.get("content")
    if isinstance(content, list):
        content = " ".join(b.get("text", "") for b in content if isinstance(b, dict))
    text = content if isinstance(content, str) else json.dumps(content)
    prefix = "The tool failed: " if result.get("is_error") else "The tool returned: "
    return prefix + text[:300]

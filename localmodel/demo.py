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
BUILD_REQUEST = re.compile(r"\b(build|make|create)\b.*?\bagent\b(?:\s+(?:that|which|to)\b)?\s*(.*)", re.I | re.S)
COPILOT_TOOL = "mcp__copilot__{}"

HELP_TEXT = (
    "Hello! I am the local model, a stand-in for Claude that runs on this machine. "
    "Ask me to *list blocks*, to *wait 2 seconds*, or to *build me an agent that…*, and I will use the copilot's "
    "tools. "
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
    build = BUILD_REQUEST.search(prompt)
    if build:
        return _build_step(build.group(2).strip() or "says hello", results)
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


def _build_graph(purpose: str) -> dict[str, Any]:
    """The graph the demo composes: one `text` block that states the purpose and fills in the run's `input`."""
    literal = purpose.replace("{", "{{").replace("}", "}}")
    return {"nodes": [{"id": "answer", "block": "text",
                       "input": {"template": f"This agent {literal}. Input: {{input}}", "values": {"input": ""}}}],
            "links": []}


def _build_step(purpose: str, results: list[Any]) -> Step:
    """The copilot's honest way to build an agent, scripted: look at the blocks, compose a graph, check it with
    validate_agent, and save it with create_agent only when it checks."""
    purpose = purpose.rstrip(" .!?")[:200]
    graph = _build_graph(purpose)
    if not results:
        return Step(text="First, the blocks I can build with.",
                    tools=(ToolRequest(COPILOT_TOOL.format("list_blocks"), {}),))
    if len(results) == 1:
        return Step(text="A `text` block can do this. Let me check the graph before saving it.",
                    tools=(ToolRequest(COPILOT_TOOL.format("validate_agent"), {"graph": graph}),))
    if len(results) == 2:
        if results[-1].get("is_error") or '"ok": true' not in _result_text(results[-1]):
            return Step(text="The graph does not check: " + _result_text(results[-1])[:300])
        return Step(text="It checks. Saving it.",
                    tools=(ToolRequest(COPILOT_TOOL.format("create_agent"), {
                        "name": f"Agent that {purpose}"[:200], "description": f"This agent {purpose}.",
                        "graph": graph}),))
    return Step(text="Done. " + _describe(results[-1]) + " Open it from the agents page to change it in the builder.")


def _result_text(result: dict[str, Any]) -> str:
    content = result.get("content")
    if isinstance(content, list):
        return " ".join(b.get("text", "") for b in content if isinstance(b, dict))
    return content if isinstance(content, str) else json.dumps(content)

"""Tool outputs as the copilot's tools returned them, for the results the CLI shortened.

The CLI replaces a large tool output (over ~50 kB) with a `<persisted-output>` preview and a path on this
server, in the result it gives the model and sends us; its PostToolUse hook still receives the whole
output. The CLI measured here runs the hook before it sends the result; should a hook come after the result
(as hooks run fire-and-forget elsewhere), the runner waits for it, with a timeout, and keeps the preview
when it does not come.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from claude_agent_sdk import HookMatcher, ToolResultBlock, UserMessage

from chat.engine.adapter import tool_result_text

PERSISTED_PREVIEW = "<persisted-output>"
HOOK_WAIT_SECONDS = 3


def is_persisted_preview(content: Any) -> bool:
    return tool_result_text(content).lstrip().startswith(PERSISTED_PREVIEW)


class WholeOutputs:
    """The PostToolUse hook's outputs of one turn's MCP tool calls, by tool_use_id."""

    def __init__(self) -> None:
        self._outputs: dict[str, Any] = {}
        self._arrived: dict[str, asyncio.Event] = {}

    def _event(self, tool_use_id: str) -> asyncio.Event:
        return self._arrived.setdefault(tool_use_id, asyncio.Event())

    async def post_tool_use(self, hook_input: Any, tool_use_id: str | None, context: Any) -> dict[str, Any]:
        response = hook_input.get("tool_response")
        # An MCP tool's response is its list of content blocks, the shape of a result's content.
        if tool_use_id and str(hook_input.get("tool_name", "")).startswith("mcp__") and isinstance(response, list):
            self._outputs[tool_use_id] = response
            self._event(tool_use_id).set()
        return {}

    def hooks(self) -> dict[str, list[HookMatcher]]:
        return {"PostToolUse": [HookMatcher(matcher="mcp__.*", hooks=[self.post_tool_use])]}

    async def whole_output(self, tool_use_id: str, *, timeout: float) -> Any | None:
        """The hook's output for the call, once it has come; None when it does not come within `timeout`."""
        try:
            await asyncio.wait_for(self._event(tool_use_id).wait(), timeout)
        except TimeoutError:
            return None
        return self._outputs.pop(tool_use_id, None)

    async def restore(self, message: Any, is_mcp_call: Callable[[str], bool]) -> Any:
        """`message` with each shortened result of an MCP call replaced by the tool's whole output, when known.

        (Only MCP calls: the hook keeps no other tool's output, so there is nothing to wait for.)
        """
        if not isinstance(message, UserMessage) or not isinstance(message.content, list):
            return message
        blocks, restored = [], False
        for block in message.content:
            if (isinstance(block, ToolResultBlock) and is_persisted_preview(block.content)
                    and is_mcp_call(block.tool_use_id)):
                whole = await self.whole_output(block.tool_use_id, timeout=HOOK_WAIT_SECONDS)
                if whole is not None:
                    block, restored = dataclasses.replace(block, content=whole), True
            elif isinstance(block, ToolResultBlock):
                self._outputs.pop(block.tool_use_id, None)  # the result is whole: the hook's copy is not needed
            blocks.append(block)
        return dataclasses.replace(message, content=blocks) if restored else message

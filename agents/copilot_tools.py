"""The copilot's tools (PROTOCOL §6), served to the SDK as the in-process MCP server `copilot`."""

from __future__ import annotations

import json
from typing import Any

from claude_agent_sdk import SdkMcpTool, ToolAnnotations, create_sdk_mcp_server, tool
from claude_agent_sdk.types import McpSdkServerConfig

from agents.blocks import BlockError, all_blocks, run_block

SERVER_NAME = "copilot"
# The CLI runs parallel calls of a tool concurrently only when it is marked read-only; blocks keep no state.
CONCURRENT = ToolAnnotations(readOnlyHint=True)


def tool_result(value: Any, *, is_error: bool = False) -> dict[str, Any]:
    text = value if isinstance(value, str) else json.dumps(value)
    return {"content": [{"type": "text", "text": text}], "is_error": is_error}


@tool("list_blocks", "List the blocks agents are made of, with their input and output schemas.", {},
      annotations=CONCURRENT)
async def list_blocks_tool(args: dict[str, Any]) -> dict[str, Any]:
    return tool_result({"blocks": [block.describe() for block in all_blocks()]})


@tool("run_block", "Run one block with an input object and return its output.",
      {"type": "object", "properties": {"block": {"type": "string"}, "input": {"type": "object"}},
       "required": ["block", "input"]}, annotations=CONCURRENT)
async def run_block_tool(args: dict[str, Any]) -> dict[str, Any]:
    try:
        return tool_result(await run_block(args.get("block", ""), args.get("input")))
    except BlockError as exc:
        return tool_result(str(exc), is_error=True)


COPILOT_TOOLS: list[SdkMcpTool[Any]] = [list_blocks_tool, run_block_tool]
COPILOT_TOOL_NAMES = [f"mcp__{SERVER_NAME}__{t.name}" for t in COPILOT_TOOLS]


def build_copilot_server() -> McpSdkServerConfig:
    return create_sdk_mcp_server(SERVER_NAME, tools=COPILOT_TOOLS)

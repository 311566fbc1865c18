"""The copilot's own tools, served to the CLI as the in-process MCP server `copilot` (PROTOCOL §6).

The engine knows no tool itself: apps register theirs (agents does, in its AppConfig.ready) with the names they
give the model. The policy grants exactly the registered tools; a turn's server is built for its session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from claude_agent_sdk import SdkMcpTool, create_sdk_mcp_server
from claude_agent_sdk.types import McpSdkServerConfig

if TYPE_CHECKING:
    from chat.engine.binding import SessionBinding

SERVER_NAME = "copilot"


@dataclass(frozen=True)
class ToolContext:
    """Whom the tools act for: the turn's chat session and its owner."""

    session_id: str | None
    owner_id: int | None


ToolFactory = Callable[[ToolContext], list[SdkMcpTool[Any]]]
_registered: list[tuple[frozenset[str], ToolFactory]] = []


def register_tools(names: Iterable[str], factory: ToolFactory) -> None:
    """Add tools to the copilot: `factory(context)` makes them for one session; `names` are theirs."""
    names = frozenset(names)
    if not any(names == known for known, _ in _registered):
        _registered.append((names, factory))


def copilot_tool_names() -> frozenset[str]:
    """The names the model calls them by (`mcp__copilot__<name>`)."""
    return frozenset(f"mcp__{SERVER_NAME}__{name}" for names, _ in _registered for name in names)


def copilot_tools(context: ToolContext) -> list[SdkMcpTool[Any]]:
    return [tool for _, factory in _registered for tool in factory(context)]


def build_copilot_server(context: ToolContext, binding: SessionBinding) -> McpSdkServerConfig:
    """The session's `copilot` server; its calls run through `binding`, so each can be cancelled alone."""
    tools = copilot_tools(context)
    config = create_sdk_mcp_server(SERVER_NAME, tools=tools)
    binding.serve_tools(config["instance"], tools)
    return config

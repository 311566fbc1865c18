"""The copilot's tools that agents provide (PROTOCOL §6), registered with the engine (chat.engine.tools) when the
app is ready.

`list_blocks` and `run_block` need nothing of the session. The agent tools act for the session's user and chat,
so `tools_for` makes them per session. The copilot composes graphs itself (list_blocks, validate_agent, then
create_agent): nothing builds one from a description. A run goes to the background worker and the tool answers at
once; the chat session hears the end as a `data-agent-run` event (agents.reports).
"""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from claude_agent_sdk import SdkMcpTool, ToolAnnotations, tool

from agents.actions import do_create_agent, do_enqueue_run, do_install_library_agent
from agents.blocks import BlockError, all_blocks, run_block
from agents.graphs import GraphError, check_graph
from agents.models import RunTrigger
from agents.selectors import (
    access_agent,
    access_library_agent,
    access_run,
    agent_summary,
    find_agents,
    library_agents,
    library_dict,
    run_dict,
)
from chat.engine.tools import ToolContext
from core.errors import ApplicationError

# The CLI runs parallel calls of a tool concurrently only when it is marked read-only; blocks keep no state.
CONCURRENT = ToolAnnotations(readOnlyHint=True)

GRAPH_HELP = ('A graph is {"nodes": [{"id": "a", "block": "text", "input": {...}}, ...], '
              '"links": [{"from": "a", "output": "text", "to": "b", "input": "template"}, ...]}: a link feeds an '
              'output of one node into an input of another ("values.name" reaches into an object input). '
              "See list_blocks for the blocks, their inputs and outputs.")


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


BLOCK_TOOLS: list[SdkMcpTool[Any]] = [list_blocks_tool, run_block_tool]
AGENT_TOOL_NAMES = ["find_agent", "validate_agent", "create_agent", "install_agent", "run_agent", "get_agent_run"]
TOOL_NAMES = [t.name for t in BLOCK_TOOLS] + AGENT_TOOL_NAMES


def require_owner(context: ToolContext) -> int:
    if context.owner_id is None:
        raise ApplicationError("agents belong to a user: this conversation has none", code="no_user")
    return context.owner_id


def _json_value(value: Any) -> Any:
    """Models sometimes send an object as a string of JSON: accept that too."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


async def _answer(work) -> dict[str, Any]:
    try:
        return tool_result(await work)
    except ApplicationError as exc:
        return tool_result(exc.message, is_error=True)


def validation(graph: Any) -> dict[str, Any]:
    """What POST /api/agents/validate/ answers, as a tool's result: `{ok: true}` or the 400's body with `ok: false`."""
    try:
        check_graph(graph)
    except GraphError as exc:
        return {"ok": False, **exc.as_json()}
    return {"ok": True}


def agent_tools(context: ToolContext) -> list[SdkMcpTool[Any]]:
    """The agent tools, acting for one session's user and reporting back to it."""

    @database_sync_to_async
    def find(args: dict[str, Any]) -> dict[str, Any]:
        query = args.get("query") or ""
        if not isinstance(query, str):
            raise ApplicationError("query must be a string", code="bad_input")
        found = find_agents(owner_id=require_owner(context), query=query)
        return {"agents": [agent_summary(agent) for agent in found],
                "library": [library_dict(entry) for entry in library_agents(query=query)]}

    @database_sync_to_async
    def create(args: dict[str, Any]) -> dict[str, Any]:
        agent = do_create_agent(owner_id=require_owner(context), name=args.get("name"),
                                description=args.get("description", ""), graph=_json_value(args.get("graph")))
        return {"agent_id": str(agent.id), "status": agent.status}

    @database_sync_to_async
    def install(args: dict[str, Any]) -> dict[str, Any]:
        agent = do_install_library_agent(owner_id=require_owner(context),
                                         entry=access_library_agent(slug=args.get("slug")))
        return {"agent_id": str(agent.id), "name": agent.name, "status": agent.status}

    @database_sync_to_async
    def run(args: dict[str, Any]) -> dict[str, Any]:
        agent = access_agent(owner_id=require_owner(context), agent_id=args.get("agent_id"))
        run = do_enqueue_run(agent=agent, inputs=_json_value(args.get("inputs")), session_id=context.session_id,
                             trigger=RunTrigger.COPILOT)
        return {"run_id": str(run.id), "status": run.status}

    @database_sync_to_async
    def get_run(args: dict[str, Any]) -> dict[str, Any]:
        shown = run_dict(access_run(owner_id=require_owner(context), run_id=args.get("run_id")))
        return {key: shown[key] for key in ("run_id", "agent_id", "status", "error", "outputs", "nodes")}

    @tool("find_agent", "Find your agents, and the library's ready-made ones (install_agent gives you a copy), whose "
          "name or description matches the query (every word; empty: all).",
          {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
          annotations=CONCURRENT)
    async def find_agent_tool(args: dict[str, Any]) -> dict[str, Any]:
        return await _answer(find(args))

    @tool("validate_agent", "Check a graph exactly as saving it would: {ok: true}, or {ok: false, problems: "
          "[{node, field, message}]} naming each problem's node and field. Fix the problems, then create_agent. "
          + GRAPH_HELP,
          {"type": "object", "properties": {"graph": {"type": "object"}}, "required": ["graph"]},
          annotations=CONCURRENT)
    async def validate_agent_tool(args: dict[str, Any]) -> dict[str, Any]:
        return tool_result(validation(_json_value(args.get("graph"))))

    @tool("create_agent", "Save a new agent from a graph you composed from list_blocks and checked with "
          "validate_agent; it is ready at once. A graph is required. " + GRAPH_HELP,
          {"type": "object", "properties": {"name": {"type": "string"}, "description": {"type": "string"},
                                            "graph": {"type": "object"}},
           "required": ["name", "graph"]})
    async def create_agent_tool(args: dict[str, Any]) -> dict[str, Any]:
        return await _answer(create(args))

    @tool("install_agent", "Install a ready-made agent of the library (find_agent lists them) as your own copy.",
          {"type": "object", "properties": {"slug": {"type": "string"}}, "required": ["slug"]})
    async def install_agent_tool(args: dict[str, Any]) -> dict[str, Any]:
        return await _answer(install(args))

    @tool("run_agent", "Start a run of an agent in the background and return its run_id at once; this chat hears "
          "when it ends. inputs, optional, is {node id: {input: value}} laid over the nodes' own inputs.",
          {"type": "object", "properties": {"agent_id": {"type": "string"}, "inputs": {"type": "object"}},
           "required": ["agent_id"]})
    async def run_agent_tool(args: dict[str, Any]) -> dict[str, Any]:
        return await _answer(run(args))

    @tool("get_agent_run", "A run's status, outputs and what each node did (input, output, status, timing).",
          {"type": "object", "properties": {"run_id": {"type": "string"}}, "required": ["run_id"]},
          annotations=CONCURRENT)
    async def get_agent_run_tool(args: dict[str, Any]) -> dict[str, Any]:
        return await _answer(get_run(args))

    return [find_agent_tool, validate_agent_tool, create_agent_tool, install_agent_tool, run_agent_tool,
            get_agent_run_tool]


def tools_for(context: ToolContext) -> list[SdkMcpTool[Any]]:
    """Every tool agents give the copilot, for one session."""
    return [*BLOCK_TOOLS, *agent_tools(context)]

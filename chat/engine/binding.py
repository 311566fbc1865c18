"""What a long-lived CLI process calls back into, bound to the turn it serves at the moment.

A session's CLI (chat.engine.warm) outlives its turns, but the SDK takes its callbacks once, at connect: the
PreToolUse and PostToolUse hooks, `can_use_tool`, and the copilot's MCP tools. `SessionBinding` gives it
callbacks that ask the *current* `TurnBinding` — that turn's policy gate and limits, its whole-output store, its
running calls and their cancellation, its approvals — so no state of one turn reaches the next. A callback that
comes while no turn is bound (nothing should ask then) is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import mcp.types
from claude_agent_sdk import HookMatcher, PermissionResultAllow, PermissionResultDeny, SdkMcpTool

from chat.engine.policy import Allow, ToolGate
from chat.engine.whole_outputs import WholeOutputs
from core import log_context

logger = logging.getLogger(__name__)

NO_TURN = "no turn of this chat is running: the call was refused"
CANCELLED_BY_USER = "cancelled by the user"
TOOL_USE_ID = "claudecode/toolUseId"  # where the CLI names the tool_use of an MCP call (the request's `_meta`)


class RunningCalls:
    """The copilot's own tool calls running in this process for one turn, by tool_use_id, and their cancels."""

    def __init__(self) -> None:
        self._work: dict[str, asyncio.Task[Any]] = {}
        self._cancelled: dict[str, str] = {}  # tool_use_id -> the error the model gets instead of the result

    def cancel(self, tool_use_id: str, reason: str) -> bool:
        """Stop a running call: its work is cancelled and the model gets `reason` as its result. A call not yet
        running is cancelled when it starts. False when it was cancelled already."""
        if tool_use_id in self._cancelled:
            return False
        self._cancelled[tool_use_id] = reason
        work = self._work.get(tool_use_id)
        if work is not None:
            work.cancel()
        return True

    def cancel_reason(self, tool_use_id: str) -> str | None:
        return self._cancelled.get(tool_use_id)

    def is_running(self, tool_use_id: str) -> bool:
        return tool_use_id in self._work

    async def run(self, tool_use_id: str | None, work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """Run one call's work; a cancel ends it with its reason as an error result."""
        if tool_use_id is not None and tool_use_id in self._cancelled:
            close = getattr(work, "close", None)
            if close is not None:
                close()  # never started
            return {"content": [{"type": "text", "text": self._cancelled[tool_use_id]}], "is_error": True}
        task = asyncio.ensure_future(work)
        if tool_use_id is not None:
            self._work[tool_use_id] = task
        try:
            return await task
        except asyncio.CancelledError:
            reason = self._cancelled.get(tool_use_id) if tool_use_id is not None else None
            if reason is None or not task.cancelled() or asyncio.current_task().cancelling():
                raise  # not ours: the CLI or the turn is stopping this call
            return {"content": [{"type": "text", "text": reason}], "is_error": True}
        finally:
            if tool_use_id is not None:
                self._work.pop(tool_use_id, None)


@dataclass
class TurnBinding:
    """One turn's side of the callbacks."""

    turn_id: str
    gate: ToolGate
    whole_outputs: WholeOutputs = field(default_factory=WholeOutputs)
    calls: RunningCalls = field(default_factory=RunningCalls)
    # Asked after the policy allowed a call, before it runs: None to let it run, or why it may not (an approval
    # denied, a cancel). Set by the turn (chat.engine.runner) when approvals apply.
    before_call: Callable[[str, dict[str, Any], str], Awaitable[str | None]] | None = None
    on_activity: Callable[[], None] = lambda: None  # a sign of life (liveness)
    # The answer for each call, by tool_use_id: the hook and can_use_tool may both ask about one call, and it is
    # decided (and waits for a person) once.
    verdicts: dict[str, asyncio.Future[str | None]] = field(default_factory=dict)


class SessionBinding:
    """The callbacks a session's CLI was connected with; each asks the turn bound now."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.turn: TurnBinding | None = None

    @classmethod
    def for_one_turn(cls, session_id: str, turn: TurnBinding) -> SessionBinding:
        """A binding that serves `turn` only (a CLI connected for one turn, as the SDK's plain loop does)."""
        binding = cls(session_id)
        binding.bind(turn)
        return binding

    def bind(self, turn: TurnBinding) -> None:
        self.turn = turn

    def unbind(self, turn: TurnBinding) -> None:
        if self.turn is turn:
            self.turn = None

    # --- the policy, and what may hold a call back once it is allowed ---

    async def _decide(self, tool_name: str, tool_input: dict[str, Any], tool_use_id: str | None) -> str | None:
        """None when the call may run; else the reason it may not. Asked twice about one call, it answers once."""
        turn = self.turn
        if turn is None:
            return NO_TURN
        turn.on_activity()
        if tool_use_id is None:
            return await self._verdict(turn, tool_name, tool_input, tool_use_id)
        verdict = turn.verdicts.get(tool_use_id)
        if verdict is None:
            verdict = turn.verdicts[tool_use_id] = asyncio.ensure_future(
                self._verdict(turn, tool_name, tool_input, tool_use_id))
        return await asyncio.shield(verdict)

    async def _verdict(self, turn: TurnBinding, tool_name: str, tool_input: dict[str, Any],
                       tool_use_id: str | None) -> str | None:
        with log_context.bound(tool_call_id=tool_use_id):
            decision = turn.gate.check(tool_name, tool_input, tool_use_id)
        if not isinstance(decision, Allow):
            return decision.reason
        if tool_use_id is not None and (cancelled := turn.calls.cancel_reason(tool_use_id)):
            return cancelled
        if turn.before_call is not None and tool_use_id is not None:
            return await turn.before_call(tool_name, tool_input, tool_use_id)
        return None

    async def pre_tool_use(self, hook_input: Any, tool_use_id: str | None, context: Any) -> dict[str, Any]:
        """PreToolUse hook: deny with the reason, or no opinion (the CLI then asks `can_use_tool` if it must)."""
        refused = await self._decide(hook_input.get("tool_name", ""), hook_input.get("tool_input") or {},
                                     tool_use_id or hook_input.get("tool_use_id"))
        if refused is None:
            return {}
        return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                       "permissionDecisionReason": refused}}

    async def can_use_tool(self, tool_name: str, tool_input: dict[str, Any],
                           context: Any) -> PermissionResultAllow | PermissionResultDeny:
        refused = await self._decide(tool_name, tool_input, getattr(context, "tool_use_id", None))
        return PermissionResultAllow() if refused is None else PermissionResultDeny(message=refused)

    async def post_tool_use(self, hook_input: Any, tool_use_id: str | None, context: Any) -> dict[str, Any]:
        turn = self.turn
        if turn is None:
            return {}
        turn.on_activity()
        return await turn.whole_outputs.post_tool_use(hook_input, tool_use_id, context)

    def hooks(self) -> dict[str, list[HookMatcher]]:
        # "block": a PreToolUse hook that fails (raises, times out) denies the call instead of letting it through.
        # No timeout of the CLI's own on it: a call may wait for a person's approval (APPROVAL_TIMEOUT_SECONDS).
        return {"PreToolUse": [HookMatcher(matcher=None, hooks=[self.pre_tool_use], timeout=24 * 3600,
                                           on_failure="block")],
                "PostToolUse": [HookMatcher(matcher="mcp__.*", hooks=[self.post_tool_use])]}

    # --- the copilot's own tools ---

    def serve_tools(self, server: Any, tools: list[SdkMcpTool[Any]]) -> None:
        """Route `server`'s tool calls through the bound turn: each call is known by its tool_use_id, so one
        call can be cancelled, alone (`RunningCalls.cancel`)."""
        by_name = {tool.name: tool for tool in tools}

        async def call_tool(ctx: Any, params: mcp.types.CallToolRequestParams) -> mcp.types.CallToolResult:
            tool_use_id = (params.meta or {}).get(TOOL_USE_ID)
            turn = self.turn
            if turn is None:
                return tool_error(NO_TURN)
            tool = by_name.get(params.name)
            if tool is None:
                return tool_error(f"Tool '{params.name}' not found")
            arguments = params.arguments or {}
            schema = tool.input_schema if isinstance(tool.input_schema, dict) and "type" in tool.input_schema else None
            if schema is not None:
                try:
                    jsonschema.validate(instance=arguments, schema=schema)
                except jsonschema.ValidationError as exc:
                    return tool_error(f"Input validation error: {exc.message}")
            turn.on_activity()
            try:
                result = await turn.calls.run(tool_use_id, tool.handler(arguments))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.exception("session=%s tool %s raised", self.session_id, params.name)
                return tool_error(str(exc) or type(exc).__name__)
            finally:
                turn.on_activity()
            return mcp.types.CallToolResult(
                content=[mcp.types.TextContent(type="text", text=block.get("text", ""))
                         for block in result.get("content", []) if block.get("type") == "text"],
                isError=bool(result.get("is_error")))

        server.add_request_handler("tools/call", mcp.types.CallToolRequestParams, call_tool)


def tool_error(text: str) -> mcp.types.CallToolResult:
    return mcp.types.CallToolResult(content=[mcp.types.TextContent(type="text", text=text)], isError=True)

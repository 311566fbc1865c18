"""The one place that decides what the model's tool calls may do: which tools, which paths, how much per turn.

Assume the model can be talked into anything. `decide` grants the copilot's own tools and Claude Code's file
tools, the latter only inside the session's workspace folder; it denies everything else unless the setting
EXTRA_ALLOWED_TOOLS names it. `ToolGate` enforces those decisions for one turn, from both a PreToolUse hook
(every call) and `can_use_tool` (every call the CLI would ask about); a denied call ends as an error result
with the reason, is logged and counted (`record_denial`), and the turn goes on. A tool the policy does not grant
is never loaded into the CLI, which refuses a call to it before any hook runs; the runner records that denial
(`refused_by_cli`).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_agent_sdk import HookMatcher, PermissionResultAllow, PermissionResultDeny

from chat.engine import observers
from chat.engine.tools import copilot_tool_names
from chat.workspaces import BAD_INPUT, NOT_A_FILE, OUTSIDE_WORKSPACE, path_refusal, room_left  # noqa: F401 (kinds of denial)
from core import log_context
from core.conf import copilot_setting

logger = logging.getLogger(__name__)

# Claude Code's file tools and the input field that names the file or folder each touches.
FILE_TOOLS = {"Read": "file_path", "Write": "file_path", "Edit": "file_path", "Glob": "path", "Grep": "path"}
# The input field that holds a glob pattern, matched below the folder searched: it must not climb out of it.
GLOB_FIELDS = {"Glob": "pattern", "Grep": "glob"}
SUBAGENT_TOOLS = frozenset({"Task", "Agent"})  # one tool: the CLI loads it as "Task", the model calls it "Agent"

# Why a call was denied, as counted in `denials` (the reason itself is a sentence for the model and the user).
NOT_GRANTED = "not_granted"
BAD_PATTERN = "bad_pattern"
BACKGROUND = "background"
TOOL_CALL_LIMIT = "tool_call_limit"
SUBAGENT_LIMIT = "subagent_limit"
WORKSPACE_FULL = "workspace_full"

# Denied calls of this process by (tool name, kind): for monitoring and tests.
denials: Counter[tuple[str, str]] = Counter()

# What the CLI answers to a call of a tool it never loaded (then it may add why, e.g. "Bash is disabled …").
CLI_NO_SUCH_TOOL = "No such tool available: {tool_name}"


@dataclass(frozen=True)
class Allow:
    pass


@dataclass(frozen=True)
class Deny:
    kind: str
    reason: str


Decision = Allow | Deny


@dataclass(frozen=True)
class TurnLimits:
    """The settings the policy reads, read once per turn."""

    extra_allowed_tools: frozenset[str] = frozenset()
    max_tool_calls: int = 50
    max_subagent_tasks: int = 3
    max_turn_seconds: float = 600

    @classmethod
    def from_settings(cls) -> TurnLimits:
        return cls(extra_allowed_tools=frozenset(copilot_setting("EXTRA_ALLOWED_TOOLS")),
                   max_tool_calls=copilot_setting("MAX_TOOL_CALLS_PER_TURN"),
                   max_subagent_tasks=copilot_setting("MAX_SUBAGENT_TASKS_PER_TURN"),
                   max_turn_seconds=copilot_setting("MAX_TURN_SECONDS"))


@dataclass
class TurnState:
    """What the turn has used so far: the tool calls decided (allowed or not) and the sub-agent tasks allowed."""

    limits: TurnLimits = field(default_factory=TurnLimits)
    tool_calls: int = 0
    subagent_tasks: int = 0


def builtin_tools(limits: TurnLimits) -> list[str]:
    """The CLI's built-in tools to load at all: the file tools and any built-in tool a setting grants.

    A tool not loaded is one the model is never offered; the CLI refuses a call to it by itself.
    """
    return sorted(set(FILE_TOOLS) | {name for name in limits.extra_allowed_tools if not name.startswith("mcp__")})


def time_limit_reason(limits: TurnLimits) -> str:
    return f"the turn hit its time limit ({limits.max_turn_seconds:g} s) and was stopped"


def decide(tool_name: str, tool_input: dict[str, Any], *, workspace: Path, turn_state: TurnState) -> Decision:
    """Whether this call, the next of the turn, may run. Reads the file system; changes nothing."""
    limits = turn_state.limits
    if turn_state.tool_calls >= limits.max_tool_calls:
        return Deny(TOOL_CALL_LIMIT, f"this turn has made {limits.max_tool_calls} tool calls, the most allowed; "
                                     "answer with what you have")
    if not isinstance(tool_input, dict):
        return Deny(BAD_INPUT, "the tool input must be an object")
    if tool_name in FILE_TOOLS:
        return _decide_file_tool(tool_name, tool_input, workspace)
    if tool_name in copilot_tool_names():
        return Allow()
    if tool_name not in granted_extras(limits):
        return Deny(NOT_GRANTED, f"{tool_name} is not allowed: the copilot may use its own tools, and the file tools "
                                 "inside this chat's workspace folder")
    if runs_in_background(tool_name, tool_input):
        return Deny(BACKGROUND, "work in the background would outlive the turn and its limits: "
                                "run it in the foreground (run_in_background: false)")
    if tool_name in SUBAGENT_TOOLS and turn_state.subagent_tasks >= limits.max_subagent_tasks:
        return Deny(SUBAGENT_LIMIT,
                    f"this turn has started {limits.max_subagent_tasks} sub-agent tasks, the most allowed")
    return Allow()


def grants(tool_name: str, limits: TurnLimits) -> bool:
    """Whether the policy lets the model use this tool at all; `decide` still checks each call of it."""
    return tool_name in FILE_TOOLS or tool_name in copilot_tool_names() or tool_name in granted_extras(limits)


def refused_by_cli(tool_name: str, error_text: str, limits: TurnLimits) -> Deny | None:
    """The denial behind a call that ended with `error_text`, when the CLI refused it as a tool it never loaded
    and the policy does not grant that tool. Such a call reaches no hook and no `can_use_tool`: no gate saw it.
    """
    if CLI_NO_SUCH_TOOL.format(tool_name=tool_name) not in error_text or grants(tool_name, limits):
        return None
    return Deny(NOT_GRANTED, error_text)


def record_denial(session_id: str, turn_id: str, tool_name: str, denied: Deny) -> None:
    """Log and count one denied call, whichever enforcement point refused it."""
    denials[(tool_name, denied.kind)] += 1
    observers.notify("policy_denial", session_id=session_id, turn_id=turn_id, tool_name=tool_name, kind=denied.kind)
    logger.warning("session=%s turn=%s denied %s (%s): %s", session_id, turn_id, tool_name, denied.kind,
                   denied.reason)


def granted_extras(limits: TurnLimits) -> frozenset[str]:
    granted = limits.extra_allowed_tools
    return granted | SUBAGENT_TOOLS if granted & SUBAGENT_TOOLS else granted


def runs_in_background(tool_name: str, tool_input: dict[str, Any]) -> bool:
    # The CLI runs sub-agents in the background unless told otherwise; other tools only when asked to.
    if tool_name in SUBAGENT_TOOLS:
        return tool_input.get("run_in_background") is not False
    return bool(tool_input.get("run_in_background"))


def _decide_file_tool(tool_name: str, tool_input: dict[str, Any], workspace: Path) -> Decision:
    path_field, glob_field = FILE_TOOLS[tool_name], GLOB_FIELDS.get(tool_name)
    # Without a path, Glob and Grep search the CLI's working folder: the workspace.
    if path_field in tool_input or path_field == "file_path":
        denied = check_path(path_field, tool_input.get(path_field), workspace)
        if denied:
            return denied
    if glob_field in tool_input:
        denied = check_glob_pattern(glob_field, tool_input[glob_field])
        if denied:
            return denied
    if tool_name in {"Write", "Edit"}:
        return check_workspace_room(tool_name, tool_input, workspace) or Allow()
    return Allow()


def bytes_added(tool_name: str, tool_input: dict[str, Any], target: str) -> int:
    """How much a Write or Edit would add to the workspace (at most; negative when it shrinks a file)."""
    try:
        current = os.path.getsize(target)
    except OSError:
        current = 0
    if tool_name == "Write":
        return len(str(tool_input.get("content", "")).encode()) - current
    old, new = str(tool_input.get("old_string", "")).encode(), str(tool_input.get("new_string", "")).encode()
    if not tool_input.get("replace_all") or not old or len(new) <= len(old):
        return len(new) - len(old)
    try:
        with open(target, "rb") as file:
            occurrences = file.read().count(old)
    except OSError:
        occurrences = 1
    return occurrences * (len(new) - len(old))


def check_workspace_room(tool_name: str, tool_input: dict[str, Any], workspace: Path) -> Deny | None:
    """None when the workspace has room for what this Write or Edit adds (MAX_WORKSPACE_BYTES)."""
    target = os.path.realpath(os.path.join(os.path.realpath(workspace), str(tool_input.get("file_path", ""))))
    added = bytes_added(tool_name, tool_input, target)
    if added <= 0:
        return None
    left = room_left(workspace)
    if added > left:
        limit = copilot_setting("MAX_WORKSPACE_BYTES")
        return Deny(WORKSPACE_FULL, f"this chat's workspace may hold {limit:,} bytes and has {max(left, 0):,} "
                                    f"left; this {tool_name} would add {added:,}: delete files first")
    return None


def check_path(name: str, raw: Any, workspace: Path) -> Deny | None:
    """None when `raw`, resolved from the workspace with every symlink followed, is a file or folder inside it."""
    refused = path_refusal(name, raw, workspace)
    return Deny(*refused) if refused else None


def check_glob_pattern(name: str, pattern: Any) -> Deny | None:
    """None when `pattern` only matches below the folder searched: not absolute, no '~', no '..' anywhere."""
    if not isinstance(pattern, str) or not pattern:
        return Deny(BAD_INPUT, f"{name} must be a non-empty pattern")
    unescaped = pattern.replace("\\", "")
    alternatives = unescaped.replace("{", ",").split(",")  # "{/etc/*,x}" names /etc as much as "/etc/*" does
    if ".." in unescaped or any(alt.lstrip().startswith(("/", "~")) for alt in alternatives):
        return Deny(BAD_PATTERN, f"{name} {pattern!r} must be relative to the folder searched, without '..'")
    return None


@dataclass
class ToolGate:
    """Enforces `decide` for one turn. A call is decided once, at whichever enforcement point sees it first."""

    session_id: str
    turn_id: str
    workspace: Path
    state: TurnState = field(default_factory=TurnState)
    decisions: dict[str, Decision] = field(default_factory=dict)  # by tool_use_id

    def denied(self, tool_use_id: str) -> bool:
        return isinstance(self.decisions.get(tool_use_id), Deny)

    def check(self, tool_name: str, tool_input: dict[str, Any], tool_use_id: str | None) -> Decision:
        if tool_use_id and tool_use_id in self.decisions:
            return self.decisions[tool_use_id]
        decision = decide(tool_name, tool_input, workspace=self.workspace, turn_state=self.state)
        self.state.tool_calls += 1
        if isinstance(decision, Allow) and tool_name in SUBAGENT_TOOLS:
            self.state.subagent_tasks += 1
        if tool_use_id:
            self.decisions[tool_use_id] = decision
        if isinstance(decision, Deny):
            record_denial(self.session_id, self.turn_id, tool_name, decision)
        return decision

    async def pre_tool_use(self, hook_input: Any, tool_use_id: str | None, context: Any) -> dict[str, Any]:
        """PreToolUse hook: deny, or no opinion (the CLI then applies its own rules and asks `can_use_tool`)."""
        tool_use_id = tool_use_id or hook_input.get("tool_use_id")
        with log_context.bound(tool_call_id=tool_use_id):
            decision = self.check(hook_input.get("tool_name", ""), hook_input.get("tool_input") or {}, tool_use_id)
        if isinstance(decision, Allow):
            return {}
        return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                       "permissionDecisionReason": decision.reason}}

    async def can_use_tool(self, tool_name: str, tool_input: dict[str, Any],
                           context: Any) -> PermissionResultAllow | PermissionResultDeny:
        tool_use_id = getattr(context, "tool_use_id", None)
        with log_context.bound(tool_call_id=tool_use_id):
            decision = self.check(tool_name, tool_input, tool_use_id)
        if isinstance(decision, Allow):
            return PermissionResultAllow()
        return PermissionResultDeny(message=decision.reason)

    def hooks(self) -> dict[str, list[HookMatcher]]:
        # "block": a hook that fails (raises, times out) denies the call instead of letting it through.
        return {"PreToolUse": [HookMatcher(matcher=None, hooks=[self.pre_tool_use], timeout=30, on_failure="block")]}

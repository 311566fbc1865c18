"""Tests of chat.engine.policy: the decision for each kind of call, and its enforcement for one turn."""

from __future__ import annotations

import logging
import os
from collections import Counter
from types import SimpleNamespace

import pytest
from claude_agent_sdk import PermissionResultAllow, PermissionResultDeny

from chat.engine import policy
from chat.engine.binding import SessionBinding, TurnBinding
from chat.engine.policy import Allow, Deny, ToolGate, TurnLimits, TurnState, builtin_tools, decide, refused_by_cli
from tests.factories import assert_turn_well_formed, script


@pytest.fixture
def workspace(tmp_path):
    folder = tmp_path / "workspaces" / "session-1"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "sub").mkdir()
    return folder


@pytest.fixture
def outside(tmp_path):
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret")
    return folder


def decision(tool, tool_input, workspace, **state):
    limits = {k: state.pop(k) for k in list(state) if k in TurnLimits.__dataclass_fields__}
    return decide(tool, tool_input, workspace=workspace, turn_state=TurnState(limits=TurnLimits(**limits), **state))


def kind(result):
    return result.kind if isinstance(result, Deny) else "allow"


@pytest.mark.parametrize("tool, tool_input", [
    ("Read", {"file_path": "notes.txt"}),
    ("Read", {"file_path": "./notes.txt"}),
    ("Write", {"file_path": "sub/new.txt", "content": "x"}),
    ("Write", {"file_path": "brand-new-folder/new.txt", "content": "x"}),
    ("Edit", {"file_path": "notes.txt", "old_string": "mine", "new_string": "ours"}),
    ("Glob", {"pattern": "**/*.txt"}),
    ("Glob", {"pattern": "*.txt", "path": "sub"}),
    ("Grep", {"pattern": "mine"}),
    ("Grep", {"pattern": r"\.\./etc", "glob": "*.txt", "path": "."}),  # a regex, not a path
])
def test_file_tools_inside_the_workspace_are_allowed(workspace, tool, tool_input):
    assert decision(tool, tool_input, workspace) == Allow()


def test_absolute_paths_inside_the_workspace_are_allowed(workspace):
    # The CLI hands hooks absolute paths: the workspace's own are fine.
    assert decision("Read", {"file_path": str(workspace / "notes.txt")}, workspace) == Allow()
    assert decision("Grep", {"pattern": "x", "path": str(workspace)}, workspace) == Allow()


@pytest.mark.parametrize("tool, tool_input, expected", [
    ("Read", {"file_path": "/etc/passwd"}, policy.OUTSIDE_WORKSPACE),
    ("Read", {"file_path": "../../outside/secret.txt"}, policy.OUTSIDE_WORKSPACE),
    ("Read", {"file_path": "sub/../notes.txt"}, policy.OUTSIDE_WORKSPACE),  # '..' is refused even when it stays in
    ("Read", {"file_path": "~/.ssh/id_rsa"}, policy.OUTSIDE_WORKSPACE),  # the CLI expands '~' to the home folder
    ("Read", {"file_path": "/dev/zero"}, policy.OUTSIDE_WORKSPACE),
    ("Read", {"file_path": "/proc/self/environ"}, policy.OUTSIDE_WORKSPACE),
    ("Read", {"file_path": ""}, policy.BAD_INPUT),
    ("Read", {"file_path": "notes.txt\0"}, policy.BAD_INPUT),
    ("Read", {"file_path": ["notes.txt"]}, policy.BAD_INPUT),
    ("Read", {}, policy.BAD_INPUT),
    ("Write", {"file_path": "/tmp/pwned", "content": "x"}, policy.OUTSIDE_WORKSPACE),
    ("Edit", {"file_path": "../session-2/notes.txt", "old_string": "a", "new_string": "b"}, policy.OUTSIDE_WORKSPACE),
    ("Glob", {"pattern": "/**"}, policy.BAD_PATTERN),
    ("Glob", {"pattern": "/etc/*"}, policy.BAD_PATTERN),
    ("Glob", {"pattern": "../**"}, policy.BAD_PATTERN),
    ("Glob", {"pattern": "sub/../../*"}, policy.BAD_PATTERN),
    ("Glob", {"pattern": r"\.\./*"}, policy.BAD_PATTERN),
    ("Glob", {"pattern": "{/etc/*,*.txt}"}, policy.BAD_PATTERN),
    ("Glob", {"pattern": "~/*"}, policy.BAD_PATTERN),
    ("Glob", {"pattern": "*", "path": "/"}, policy.OUTSIDE_WORKSPACE),
    ("Glob", {"pattern": "*", "path": None}, policy.BAD_INPUT),
    ("Grep", {"pattern": "root", "path": "/"}, policy.OUTSIDE_WORKSPACE),
    ("Grep", {"pattern": "root", "path": "/etc/passwd"}, policy.OUTSIDE_WORKSPACE),
    ("Grep", {"pattern": "root", "glob": "../*"}, policy.BAD_PATTERN),
])
def test_escapes_are_denied(workspace, tool, tool_input, expected):
    result = decision(tool, tool_input, workspace)
    assert kind(result) == expected, result
    assert result.reason


def test_a_sibling_folder_sharing_the_workspace_name_prefix_is_outside(workspace):
    sibling = workspace.parent / (workspace.name + "-evil")
    sibling.mkdir()
    (sibling / "f.txt").write_text("x")
    assert kind(decision("Read", {"file_path": str(sibling / "f.txt")}, workspace)) == policy.OUTSIDE_WORKSPACE


def test_symlinks_are_followed_before_the_check(workspace, outside):
    os.symlink(outside / "secret.txt", workspace / "link-to-secret.txt")
    os.symlink(outside, workspace / "link-to-outside")
    os.symlink(outside / "not-yet.txt", workspace / "dangling")
    os.symlink(workspace / "notes.txt", workspace / "link-to-notes.txt")
    os.symlink("/dev/zero", workspace / "zero")
    assert kind(decision("Read", {"file_path": "link-to-secret.txt"}, workspace)) == policy.OUTSIDE_WORKSPACE
    assert kind(decision("Read", {"file_path": "link-to-outside/secret.txt"}, workspace)) == policy.OUTSIDE_WORKSPACE
    assert kind(decision("Write", {"file_path": "link-to-outside/new.txt", "content": "x"}, workspace)) \
        == policy.OUTSIDE_WORKSPACE
    assert kind(decision("Write", {"file_path": "dangling", "content": "x"}, workspace)) == policy.OUTSIDE_WORKSPACE
    assert kind(decision("Grep", {"pattern": "x", "path": "link-to-outside"}, workspace)) == policy.OUTSIDE_WORKSPACE
    assert kind(decision("Read", {"file_path": "zero"}, workspace)) == policy.OUTSIDE_WORKSPACE
    assert decision("Read", {"file_path": "link-to-notes.txt"}, workspace) == Allow()


def test_special_files_inside_the_workspace_are_denied(workspace):
    os.mkfifo(workspace / "pipe")
    result = decision("Read", {"file_path": "pipe"}, workspace)
    assert kind(result) == policy.NOT_A_FILE and "not a regular file" in result.reason
    assert kind(decision("Write", {"file_path": "pipe", "content": "x"}, workspace)) == policy.NOT_A_FILE


@pytest.mark.parametrize("tool", ["Bash", "WebFetch", "WebSearch", "Task", "Agent", "NotebookEdit", "MultiEdit",
                                  "mcp__other__steal", "mcp__copilot__not_a_tool", "ListMcpResourcesTool"])
def test_tools_not_granted_are_denied(workspace, tool):
    result = decision(tool, {"command": "id"}, workspace)
    assert kind(result) == policy.NOT_GRANTED and tool in result.reason


def test_the_copilot_tools_are_allowed(workspace):
    assert decision("mcp__copilot__list_blocks", {}, workspace) == Allow()
    assert decision("mcp__copilot__run_block", {"block": "wait", "input": {"seconds": 0}}, workspace) == Allow()


def test_a_setting_grants_extra_tools_but_never_in_the_background(workspace):
    granted = frozenset({"Bash", "Task", "mcp__other__search"})
    assert decision("Bash", {"command": "ls"}, workspace, extra_allowed_tools=granted) == Allow()
    assert decision("mcp__other__search", {}, workspace, extra_allowed_tools=granted) == Allow()
    assert kind(decision("Bash", {"command": "sleep 999", "run_in_background": True}, workspace,
                         extra_allowed_tools=granted)) == policy.BACKGROUND
    assert kind(decision("Task", {"prompt": "x", "run_in_background": True}, workspace,
                         extra_allowed_tools=granted)) == policy.BACKGROUND
    # The CLI runs a sub-agent in the background unless the call says otherwise.
    assert kind(decision("Agent", {"prompt": "x"}, workspace, extra_allowed_tools=granted)) == policy.BACKGROUND
    assert decision("Agent", {"prompt": "x", "run_in_background": False}, workspace,
                    extra_allowed_tools=granted) == Allow()  # granting "Task" grants its other name too
    # File tools stay inside the workspace even when a setting names them.
    assert kind(decision("Read", {"file_path": "/etc/passwd"}, workspace,
                         extra_allowed_tools=frozenset({"Read"}))) == policy.OUTSIDE_WORKSPACE


def test_sub_agent_tasks_are_capped_per_turn(workspace):
    granted, foreground = frozenset({"Task"}), {"prompt": "x", "run_in_background": False}
    assert decision("Task", foreground, workspace, extra_allowed_tools=granted, max_subagent_tasks=2,
                    subagent_tasks=1) == Allow()
    result = decision("Task", foreground, workspace, extra_allowed_tools=granted, max_subagent_tasks=2,
                      subagent_tasks=2)
    assert kind(result) == policy.SUBAGENT_LIMIT and "2 sub-agent tasks" in result.reason


def test_tool_calls_are_capped_per_turn(workspace):
    assert decision("mcp__copilot__list_blocks", {}, workspace, max_tool_calls=3, tool_calls=2) == Allow()
    result = decision("mcp__copilot__list_blocks", {}, workspace, max_tool_calls=3, tool_calls=3)
    assert kind(result) == policy.TOOL_CALL_LIMIT and "3 tool calls" in result.reason


def test_only_the_file_tools_and_granted_built_ins_are_loaded():
    assert builtin_tools(TurnLimits()) == ["Edit", "Glob", "Grep", "Read", "Write"]
    assert builtin_tools(TurnLimits(extra_allowed_tools=frozenset({"Bash", "mcp__other__x"}))) == [
        "Bash", "Edit", "Glob", "Grep", "Read", "Write"]


# --- the enforcement for one turn: its ToolGate, behind the callbacks a session's CLI is connected with ---

class Enforcement:
    """The hook and can_use_tool of a session's CLI, bound to one turn's gate (chat.engine.binding)."""

    def __init__(self, gate: ToolGate) -> None:
        self.state = gate.state
        self.binding = SessionBinding("s-1")
        self.binding.bind(TurnBinding(turn_id="t-1", gate=gate))
        self.pre_tool_use = self.binding.pre_tool_use
        self.can_use_tool = self.binding.can_use_tool


def gate_for(workspace, **limits) -> Enforcement:
    return Enforcement(ToolGate(session_id="s-1", turn_id="t-1", workspace=workspace,
                                state=TurnState(limits=TurnLimits(**limits))))


async def test_a_call_is_decided_once_whichever_enforcement_point_sees_it(workspace):
    gate = gate_for(workspace, max_tool_calls=1)
    hook_answer = await gate.pre_tool_use(
        {"tool_name": "Write", "tool_input": {"file_path": "a.txt", "content": "x"}}, "toolu_1", {})
    permission = await gate.can_use_tool("Write", {"file_path": "a.txt", "content": "x"},
                                         SimpleNamespace(tool_use_id="toolu_1"))
    assert hook_answer == {} and isinstance(permission, PermissionResultAllow)
    assert gate.state.tool_calls == 1  # not 2: the second point saw the same call
    # the next call is over the cap, at either point
    assert isinstance(await gate.can_use_tool("Read", {"file_path": "a.txt"}, SimpleNamespace(tool_use_id="toolu_2")),
                      PermissionResultDeny)


async def test_a_denial_is_an_answer_with_the_reason_and_is_logged_and_counted(workspace, caplog):
    gate = gate_for(workspace)
    before = policy.denials[("Read", policy.OUTSIDE_WORKSPACE)]
    with caplog.at_level(logging.WARNING, logger="chat.engine.policy"):
        hook_answer = await gate.pre_tool_use({"tool_name": "Read", "tool_input": {"file_path": "/etc/passwd"}},
                                              "toolu_1", {})
    output = hook_answer["hookSpecificOutput"]
    assert output["permissionDecision"] == "deny" and "/etc/passwd" in output["permissionDecisionReason"]
    permission = await gate.can_use_tool("Read", {"file_path": "/etc/passwd"}, SimpleNamespace(tool_use_id="toolu_1"))
    assert isinstance(permission, PermissionResultDeny) and not permission.interrupt  # the turn goes on
    assert permission.message == output["permissionDecisionReason"]
    assert policy.denials[("Read", policy.OUTSIDE_WORKSPACE)] == before + 1
    [record] = caplog.records
    assert "session=s-1 turn=t-1 denied Read (outside_workspace)" in record.getMessage()


async def test_allowed_sub_agent_tasks_count_towards_their_cap(workspace):
    gate = gate_for(workspace, extra_allowed_tools=frozenset({"Agent"}), max_subagent_tasks=1)
    foreground = {"prompt": "a", "run_in_background": False}
    first = await gate.pre_tool_use({"tool_name": "Agent", "tool_input": foreground}, "toolu_1", {})
    second = await gate.pre_tool_use({"tool_name": "Agent", "tool_input": foreground}, "toolu_2", {})
    assert first == {} and "sub-agent tasks" in second["hookSpecificOutput"]["permissionDecisionReason"]


def test_a_cli_refusal_is_a_denial_only_for_a_tool_not_granted():
    def no_such_tool(name: str) -> str:
        return f"<tool_use_error>Error: No such tool available: {name}</tool_use_error>"

    assert refused_by_cli("Bash", no_such_tool("Bash"), TurnLimits()) == Deny(policy.NOT_GRANTED, no_such_tool("Bash"))
    # The gate's own denials end with another text; the gate has recorded them.
    assert refused_by_cli("Bash", "PreToolUse:Bash hook error: Bash is not allowed", TurnLimits()) is None
    # Granted, yet not loaded (no such MCP server): a failure, not the policy's denial.
    granted = TurnLimits(extra_allowed_tools=frozenset({"mcp__other__x"}))
    assert refused_by_cli("mcp__other__x", no_such_tool("mcp__other__x"), granted) is None
    assert refused_by_cli("Read", "File does not exist.", TurnLimits()) is None


# --- through the real SDK and CLI ---

@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_turn_left_running")
async def test_calls_the_cli_refuses_are_logged_and_counted_as_denials_and_the_turn_goes_on(chat, caplog):
    denied_before = policy.denials.copy()

    with caplog.at_level(logging.WARNING, logger="chat.engine.policy"):
        result = await chat.run(script(
            {"tools": [{"name": "Bash", "input": {"command": "ls"}},
                       {"name": "WebFetch", "input": {"url": "http://127.0.0.1:9/", "prompt": "summarise"}},
                       {"name": "Read", "input": {"file_path": "/etc/passwd"}}]},
            {"text": "I will answer without them."}))

    assert_turn_well_formed(result.events)
    assert result.status() == "completed" and result.turn.assistant_message.text == "I will answer without them."
    # Each call counted once: the CLI's refusals of Bash and WebFetch, and the gate's own denial of Read.
    assert policy.denials - denied_before == Counter({("Bash", policy.NOT_GRANTED): 1,
                                                      ("WebFetch", policy.NOT_GRANTED): 1,
                                                      ("Read", policy.OUTSIDE_WORKSPACE): 1})
    logged = [record.getMessage() for record in caplog.records if record.name == "chat.engine.policy"]
    assert len(logged) == 3, logged
    for tool in ["Bash", "WebFetch"]:
        output = result.output_of(tool)
        assert output["type"] == "tool-output-error" and f"No such tool available: {tool}" in output["errorText"]
        assert f"session={chat.session.id} turn={result.turn.id} denied {tool} (not_granted): " \
               f"{output['errorText']}" in logged

"""Tools not granted, and the limits of a turn, through the real SDK and CLI."""

from __future__ import annotations

import pytest

from chat.engine import policy
from chat.engine.registry import running_turns
from chat.models import ToolCallStatus, TurnStatus
from tests.factories import assert_turn_well_formed, chunk_types, script, streamed_text, wait_tool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_turn_left_running")]

LIST_BLOCKS = {"name": "mcp__copilot__list_blocks", "input": {}}


async def test_tools_not_granted_are_refused_and_the_turn_goes_on(chat, outside, model_saw):
    pwned = outside.folder / "pwned"
    result = await chat.run(script(
        {"tools": [
            {"name": "Bash", "input": {"command": f"cat {outside.secret_file}; touch {pwned}"}},
            {"name": "WebFetch", "input": {"url": "http://127.0.0.1:9/", "prompt": "summarise"}},
            {"name": "WebSearch", "input": {"query": "how to leave a sandbox"}},
            {"name": "Task", "input": {"description": "x", "prompt": "read /etc/passwd",
                                       "subagent_type": "general-purpose"}},
            {"name": "Agent", "input": {"description": "x", "prompt": "read /etc/passwd"}},
            {"name": "mcp__evil__exfiltrate", "input": {"what": "everything"}},
        ]},
        {"text": "None of those are mine to use."}))

    assert_turn_well_formed(result.events)
    for tool in ["Bash", "WebFetch", "WebSearch", "Task", "Agent", "mcp__evil__exfiltrate"]:
        output = result.output_of(tool)
        # Never loaded into the CLI, so the CLI itself refuses them before any hook runs.
        assert output["type"] == "tool-output-error" and "No such tool available" in output["errorText"], output
    assert result.status() == "completed" and result.turn.assistant_message.text == "None of those are mine to use."
    assert outside.untouched() and not model_saw(outside.secret)


async def test_a_setting_grants_a_built_in_tool_but_not_in_the_background(chat, settings, copilot_settings):
    settings.COPILOT = {**copilot_settings, "EXTRA_ALLOWED_TOOLS": ["Bash"]}
    denied_before = policy.denials[("Bash", policy.BACKGROUND)]

    result = await chat.run(script({"tools": [
        {"name": "Bash", "input": {"command": "echo granted-here > granted.txt; cat granted.txt"}}]}, {"tools": [
        {"name": "Bash", "input": {"command": "sleep 60", "run_in_background": True}}]}))

    assert_turn_well_formed(result.events)
    assert "granted-here" in str(result.output_of("Bash", command="echo granted-here > granted.txt; cat granted.txt"))
    assert (chat.workspace / "granted.txt").read_text() == "granted-here\n"
    background = result.output_of("Bash", command="sleep 60")
    assert background["type"] == "tool-output-error" and "background" in background["errorText"]
    assert policy.denials[("Bash", policy.BACKGROUND)] == denied_before + 1


async def test_tool_calls_past_the_per_turn_cap_are_refused(chat, settings, copilot_settings):
    settings.COPILOT = {**copilot_settings, "MAX_TOOL_CALLS_PER_TURN": 2}
    denied_before = policy.denials[("mcp__copilot__list_blocks", policy.TOOL_CALL_LIMIT)]

    result = await chat.run(script({"tools": [LIST_BLOCKS]}, {"tools": [LIST_BLOCKS]}, {"tools": [LIST_BLOCKS]},
                                   {"text": "I stopped calling tools."}))

    assert_turn_well_formed(result.events)
    outputs = list(result.outputs().values())
    assert [o["type"] for o in outputs] == ["tool-output-available"] * 2 + ["tool-output-error"]
    assert "2 tool calls, the most allowed" in outputs[2]["errorText"]
    assert result.status() == "completed" and result.turn.assistant_message.text == "I stopped calling tools."
    assert policy.denials[("mcp__copilot__list_blocks", policy.TOOL_CALL_LIMIT)] == denied_before + 1


async def test_a_turn_past_its_time_limit_is_stopped_and_says_so(chat, settings, copilot_settings):
    settings.COPILOT = {**copilot_settings, "MAX_TURN_SECONDS": 2}

    result = await chat.run(script({"tools": [wait_tool(30)]}, {"text": "never said"}), timeout=20)

    assert_turn_well_formed(result.events)
    [error] = [e["chunk"]["errorText"] for e in result.events if e["chunk"]["type"] == "error"]
    assert error == "the turn hit its time limit (2 s) and was stopped"
    assert result.status() == "failed"
    assert result.turn.status == TurnStatus.FAILED and result.turn.error == error
    # Usually mid-tool; on a loaded machine the CLI may take the whole limit to start, before any call.
    assert all(o["type"] == "tool-output-error" and "interrupted" in o["errorText"] for o in result.outputs().values())
    assert all(call.status == ToolCallStatus.INTERRUPTED for call in result.calls)
    assert streamed_text(result.events) == ""
    assert running_turns.task_for(str(chat.session.id)) is None
    # the session takes the next message
    settings.COPILOT = copilot_settings
    again = await chat.run(script({"text": "back"}))
    assert again.status() == "completed" and "error" not in chunk_types(again.events)


async def test_granted_sub_agents_run_in_the_foreground_under_the_same_policy_and_a_cap(
        chat, settings, copilot_settings, model_saw):
    settings.COPILOT = {**copilot_settings, "EXTRA_ALLOWED_TOOLS": ["Task"], "MAX_SUBAGENT_TASKS_PER_TURN": 1}
    denied_before = policy.denials.copy()
    sub_agent_script = script({"tools": [{"name": "Read", "input": {"file_path": "/etc/passwd"}}]},
                              {"text": "The sub-agent could not read it."})

    def agent(description: str, **extra) -> dict:
        return {"name": "Agent", "input": {"description": description, "prompt": sub_agent_script,
                                           "subagent_type": "general-purpose", **extra}}

    result = await chat.run(script({"tools": [agent("in the background")]},
                                   {"tools": [agent("in the foreground", run_in_background=False)]},
                                   {"tools": [agent("one too many", run_in_background=False)]},
                                   {"text": "Done with helpers."}))

    assert_turn_well_formed(result.events)
    background = result.output_of("Agent", description="in the background")
    assert background["type"] == "tool-output-error" and "run_in_background: false" in background["errorText"]
    foreground = result.output_of("Agent", description="in the foreground")
    assert foreground["type"] == "tool-output-available"
    assert "The sub-agent could not read it." in str(foreground["output"])
    too_many = result.output_of("Agent", description="one too many")
    assert too_many["type"] == "tool-output-error" and "1 sub-agent tasks, the most allowed" in too_many["errorText"]
    # The sub-agent's own calls go through the same policy.
    assert policy.denials[("Read", policy.OUTSIDE_WORKSPACE)] == denied_before[("Read", policy.OUTSIDE_WORKSPACE)] + 1
    assert not model_saw("root:x:0:0")
    assert result.status() == "completed" and result.turn.assistant_message.text == "Done with helpers."

"""Outputs the CLI shortens to a `<persisted-output>` preview reach the chat and the database whole."""

from __future__ import annotations

import asyncio
import json

import pytest
from claude_agent_sdk import ToolResultBlock, UserMessage

from chat.engine import whole_outputs
from chat.engine.whole_outputs import WholeOutputs
from tests.chat.test_engine import new_session, outputs_by_id, run_turn
from tests.factories import assert_turn_well_formed, script, text_tool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_turn_left_running")]

COPIES, PIECE = 40, "abc" * 700  # an 84 kB output from a 2 kB input: the CLI shortens it


def big_output_call() -> dict:
    return text_tool("{piece}" * COPIES, {"piece": PIECE})


async def test_an_output_the_cli_shortens_is_shown_and_saved_whole(copilot_settings):
    session = await new_session()
    events, turn, [call] = await run_turn(session, script({"tools": [big_output_call()]}, {"text": "Written."}))
    assert_turn_well_formed(events)
    assert call.output == {"text": PIECE * COPIES}
    [output] = outputs_by_id(events).values()
    assert output["output"]["truncated"] is True  # over TOOL_OUTPUT_EVENT_CHARS: our own cut, with its note
    assert output["output"]["preview"].startswith('{"text": "abcabc')
    streamed = json.dumps(events)
    assert "persisted-output" not in streamed and str(copilot_settings["CLI_HOME_DIR"]) not in streamed


def shortened_result(tool_use_id: str) -> UserMessage:
    """A result message as the CLI sends it for a shortened output (built here: the CLI measured here always
    runs the hook first, so a hook after the result cannot be produced with it)."""
    preview = "<persisted-output>\nOutput too large (84.0KB). Full output saved to: /somewhere\n</persisted-output>"
    return UserMessage(content=[ToolResultBlock(tool_use_id=tool_use_id, content=[{"type": "text", "text": preview}])])


async def test_a_hook_later_than_the_result_is_waited_for():
    outputs = WholeOutputs()
    restoring = asyncio.create_task(outputs.restore(shortened_result("toolu_1"), is_mcp_call=lambda _: True))
    await asyncio.sleep(0)  # let the restore start waiting for the hook
    assert not restoring.done()
    whole = [{"type": "text", "text": json.dumps({"text": "all of it"})}]
    await outputs.post_tool_use({"tool_name": "mcp__copilot__run_block", "tool_response": whole}, "toolu_1", None)
    [block] = (await restoring).content
    assert block.content == whole


async def test_without_the_hook_the_preview_is_kept(monkeypatch):
    monkeypatch.setattr(whole_outputs, "HOOK_WAIT_SECONDS", 0.05)
    message = shortened_result("toolu_2")
    assert await WholeOutputs().restore(message, is_mcp_call=lambda _: True) is message


async def test_a_shortened_result_of_another_tool_is_not_waited_for(monkeypatch):
    monkeypatch.setattr(whole_outputs, "HOOK_WAIT_SECONDS", 60)  # a wait would time the test out
    message = shortened_result("toolu_3")
    async with asyncio.timeout(5):
        assert await WholeOutputs().restore(message, is_mcp_call=lambda _: False) is message


async def test_parallel_large_outputs_past_a_mebibyte_in_all_complete():
    """The CLI mirrors the transcript in batches: 15 outputs of 40 kB make one message past the SDK's default
    1 MiB limit, which would fail the turn (options.SDK_MAX_MESSAGE_BYTES)."""
    calls = [text_tool("{a}" * 20, {"a": f"{i % 10}" * 2_000}) for i in range(15)]
    session = await new_session()
    events, turn, rows = await run_turn(session, script({"tools": calls}, {"text": "All written."}))
    assert_turn_well_formed(events)
    assert turn.status == "completed"
    assert sorted(len(row.output["text"]) for row in rows) == [40_000] * 15

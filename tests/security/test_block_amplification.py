"""A block asked for a huge output, through the real SDK and CLI: a tool error, and the turn goes on."""

from __future__ import annotations

import pytest

from tests.factories import assert_turn_well_formed, script, text_tool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_turn_left_running")]


async def test_huge_outputs_are_tool_errors_and_the_turn_goes_on(chat, settings, copilot_settings):
    settings.COPILOT = {**copilot_settings, "BLOCK_MAX_OUTPUT_BYTES": 200_000}
    wide = text_tool("{a:>300000000}", {"a": "x"})  # 300 MB of spaces if it were built
    many = text_tool("{a}" * 1_000, {"a": "y" * 1_000})  # 1,000,000 characters
    escaped = text_tool("{a}" * 150, {"a": "é" * 1_000})  # 150,000 characters, each six bytes as JSON
    power = {"name": "mcp__copilot__run_block", "input": {"block": "calculator", "input": {"expression": "9**9**9"}}}

    result = await chat.run(script({"tools": [wide, many, escaped, power]}, {"tools": [text_tool("Hi {a}", {"a": "Ada"})]},
                                   {"text": "Those were too big; the small one worked."}))

    assert_turn_well_formed(result.events)
    outputs = list(result.outputs().values())
    assert [output["type"] for output in outputs] == ["tool-output-error"] * 4 + ["tool-output-available"]
    errors = " | ".join(output["errorText"] for output in outputs[:4])
    assert "text: the placeholder '{a:>300000000}' has a format spec" in errors
    assert ("text: the text would be 1,000,000 characters, more than BLOCK_MAX_OUTPUT_BYTES (200,000) allows"
            in errors)
    assert ("text: the block's output is 900,012 bytes as JSON, more than BLOCK_MAX_OUTPUT_BYTES (200,000)"
            in errors)
    assert "calculator: exponents are limited to -1000..1000" in errors
    assert "Hi Ada" in str(outputs[4]["output"])
    assert result.status() == "completed"
    assert result.turn.assistant_message.text == "Those were too big; the small one worked."

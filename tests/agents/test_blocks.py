"""The built-in blocks and the copilot tools that run them."""

from __future__ import annotations

import json
import time

import pytest

from agents.blocks import BlockError, all_blocks, run_block
from agents.copilot_tools import list_blocks_tool, run_block_tool


async def test_wait_really_sleeps_and_returns_the_seconds():
    started = time.monotonic()
    assert await run_block("wait", {"seconds": 0.2}) == {"seconds": 0.2}
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize("seconds", [-1, "2", None, True, 10_000])
async def test_wait_refuses_bad_seconds(seconds):
    with pytest.raises(BlockError):
        await run_block("wait", {"seconds": seconds})


async def test_text_fills_a_template():
    assert await run_block("text", {"template": "Hi {name}!", "values": {"name": "Ada"}}) == {"text": "Hi Ada!"}


@pytest.mark.parametrize("block_input", [{"template": "{missing}"}, {"template": 3}, {"template": "{a.b}", "values": {"a": 1}},
                                         {"template": "{0}", "values": {}}, {"template": "x", "values": []}])
async def test_text_refuses_bad_input(block_input):
    with pytest.raises(BlockError):
        await run_block("text", block_input)


async def test_unknown_block_is_a_clear_error():
    with pytest.raises(BlockError, match="unknown block 'nope'"):
        await run_block("nope", {})


async def test_copilot_tools_report_block_errors_as_tool_errors():
    result = await run_block_tool.handler({"block": "nope", "input": {}})
    assert result["is_error"] is True and "unknown block" in result["content"][0]["text"]
    ok = await run_block_tool.handler({"block": "text", "input": {"template": "x"}})
    assert json.loads(ok["content"][0]["text"]) == {"text": "x"}
    listed = json.loads((await list_blocks_tool.handler({}))["content"][0]["text"])
    assert {b["name"] for b in listed["blocks"]} == {b.name for b in all_blocks()} >= {"wait", "text"}

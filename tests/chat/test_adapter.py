"""The SDK → chunk mapping alone: SDK dataclasses in, chunks out, no CLI, no database (chat.engine.adapter)."""

from __future__ import annotations

import json

from claude_agent_sdk import (
    AssistantMessage,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from chat.engine.adapter import RETRIED_AWAY, TurnAdapter
from chat.events.chunks import INTERRUPTED

SESSION = "5f0c8a52-7a43-4c1e-9f55-0d7e0a3c2b11"
TOOL = "mcp__copilot__run_block"


def event(payload: dict, parent: str | None = None) -> StreamEvent:
    return StreamEvent(uuid="u", session_id=SESSION, event=payload, parent_tool_use_id=parent)


def message_start() -> StreamEvent:
    return event({"type": "message_start", "message": {"id": "msg_1", "content": []}})


def tool_use(index: int, tool_id: str, tool_input: dict) -> list:
    """What the CLI sends for one of several parallel calls: its block, then its own AssistantMessage."""
    return [event({"type": "content_block_start", "index": index,
                   "content_block": {"type": "tool_use", "id": tool_id, "name": TOOL, "input": {}}}),
            AssistantMessage(content=[ToolUseBlock(id=tool_id, name=TOOL, input=tool_input)], model="m",
                             message_id="msg_1", session_id=SESSION),
            event({"type": "content_block_stop", "index": index})]


def result(tool_id: str, value, *, is_error: bool = False) -> UserMessage:
    text = value if isinstance(value, str) else json.dumps(value)
    return UserMessage(content=[ToolResultBlock(tool_use_id=tool_id, content=[{"type": "text", "text": text}],
                                                is_error=is_error)])


def text(index: int, *words: str) -> list:
    return [event({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
            *[event({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": word}})
              for word in words],
            event({"type": "content_block_stop", "index": index})]


def done(*, is_error: bool = False, result_text: str = "") -> ResultMessage:
    return ResultMessage(subtype="success", duration_ms=1, duration_api_ms=1, is_error=is_error, num_turns=1,
                         session_id=SESSION, result=result_text)


def feed(adapter: TurnAdapter, messages: list) -> list[dict]:
    return [chunk for message in messages for chunk in adapter.feed(message)]


def outputs(chunks: list[dict]) -> dict[str, dict]:
    return {c["toolCallId"]: c for c in chunks if c["type"] in {"tool-output-available", "tool-output-error"}}


def test_parallel_calls_of_the_same_tool_with_the_same_input_keep_their_own_outputs_in_any_order():
    adapter = TurnAdapter()
    same = {"block": "wait", "input": {"seconds": 1}}
    chunks = feed(adapter, [message_start(), *tool_use(0, "a", same), *tool_use(1, "b", same), *tool_use(2, "c", same),
                            result("c", {"n": 3}), result("a", {"n": 1}), result("b", {"n": 2})])
    kinds = [c["type"] for c in chunks]
    assert kinds.count("tool-input-available") == 3 and "finish-step" not in kinds  # a tool-only message is no step end
    assert {call: out["output"] for call, out in outputs(chunks).items()} == {"a": {"n": 1}, "b": {"n": 2},
                                                                             "c": {"n": 3}}
    assert all(state.ended for state in adapter.tool_calls.values())


def test_a_late_or_repeated_output_is_never_shown_twice():
    adapter = TurnAdapter()
    chunks = feed(adapter, [message_start(), *tool_use(0, "a", {}), result("a", "first"), result("a", "again"),
                            result("unknown", "who")])
    assert [c["output"] for c in chunks if c["type"] == "tool-output-available"] == ["first"]


def test_a_retried_attempt_is_discarded_and_a_call_shown_before_the_cut_ends_once():
    adapter = TurnAdapter()
    cut = feed(adapter, [message_start(), *text(0, "half an "), *tool_use(1, "a", {})])
    retried = feed(adapter, [SystemMessage(subtype="api_retry", data={"attempt": 1, "max_retries": 2,
                                                                      "retry_delay_ms": 500, "error_status": 529})])
    again = feed(adapter, [message_start(), *text(0, "whole answer"), done()])
    [retry] = [c for c in retried if c["type"] == "data-retry"]
    assert retry["data"]["discard"] == ["text-0", "a"] and retry["data"]["attempt"] == 1
    assert outputs(retried)["a"]["errorText"] == RETRIED_AWAY
    assert [p["text"] for p in adapter.saved_parts()] == ["whole answer"]  # the cut text is not saved
    assert not outputs(again) and "text-0" not in [c.get("id") for c in again]  # new part ids: nothing reused
    assert cut[0]["type"] == "start-step"


def test_the_cli_giving_up_on_the_model_is_a_failed_turn_not_an_answer():
    adapter = TurnAdapter()
    chunks = feed(adapter, [message_start(), *text(0, "partial "),
                            AssistantMessage(content=[TextBlock(text="API Error: 500 boom")], model="m",
                                             error="server_error", session_id=SESSION),
                            done(is_error=True, result_text="API Error: 500 boom")])
    assert adapter.outcome.is_error and adapter.outcome.error_text == "API Error: 500 boom"
    assert [c for c in chunks if c["type"] == "data-discard"][0]["data"]["discard"] == ["text-0"]
    assert adapter.saved_parts() == []  # the partial answer is no answer


def test_an_error_result_says_what_failed():
    adapter = TurnAdapter()
    feed(adapter, [message_start(), done(is_error=True, result_text="prompt is too long")])
    assert adapter.outcome.is_error and adapter.outcome.error_text == "prompt is too long"


def test_closing_a_turn_ends_each_open_call_once_as_interrupted_and_then_the_step():
    adapter = TurnAdapter()
    feed(adapter, [message_start(), *tool_use(0, "a", {}), *tool_use(1, "b", {}), result("a", "ok"),
                   event({"type": "content_block_start", "index": 2,
                          "content_block": {"type": "text", "text": ""}})])
    closing = adapter.close_turn()
    assert [c["type"] for c in closing] == ["text-end", "tool-output-error", "finish-step"]
    assert closing[1] == {"type": "tool-output-error", "toolCallId": "b", "errorText": INTERRUPTED, "dynamic": True}
    assert adapter.close_turn() == []


def test_calls_the_cli_cuts_short_while_stopping_end_as_interrupted():
    adapter = TurnAdapter()
    feed(adapter, [message_start(), *tool_use(0, "a", {})])
    adapter.begin_interrupt()
    chunks = feed(adapter, [result("a", "[Request interrupted by user]", is_error=True)])
    assert outputs(chunks)["a"]["errorText"] == INTERRUPTED


def test_what_a_sub_agent_streams_stays_inside_its_call():
    adapter = TurnAdapter()
    chunks = feed(adapter, [message_start(), event({"type": "message_start", "message": {}}, parent="task-1"),
                            AssistantMessage(content=[TextBlock(text="inner")], model="m", parent_tool_use_id="task-1")])
    assert [c["type"] for c in chunks] == ["start-step"]


def test_a_large_output_is_cut_for_the_event_and_kept_whole_for_saving():
    adapter = TurnAdapter(max_event_output_chars=10)
    chunks = feed(adapter, [message_start(), *tool_use(0, "a", {}), result("a", {"text": "x" * 100})])
    shown = outputs(chunks)["a"]["output"]
    assert shown["truncated"] is True and len(shown["preview"]) == 10
    assert adapter.tool_calls["a"].full_output == {"text": "x" * 100}

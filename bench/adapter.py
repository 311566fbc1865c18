"""Benchmark: the SDK-message -> chunk mapping alone (`chat.engine.adapter.TurnAdapter.feed`).

A turn's message stream is recorded once, in code, shaped like what the bundled CLI sends for
`#script [{"tools": [5 x run_block wait]}, {"text": <200 words>}]` with partial messages on:

  SystemMessage init, SystemMessage status
  step 1: message_start; per tool: content_block_start tool_use, input_json_delta, AssistantMessage
          [ToolUseBlock], content_block_stop; message_delta (tool_use), message_stop
  5 UserMessage [ToolResultBlock] in completion order, SystemMessage status
  step 2: message_start, content_block_start text, 200 text_deltas, AssistantMessage [TextBlock],
          content_block_stop, message_delta (end_turn), message_stop
  ResultMessage

The stream is fed through a fresh TurnAdapter per turn, many times, pinned to one core. It prints
chunks/s and, as the baseline measured in the same run, a loop that only builds as many chunk-sized
dicts, with the ratio between the two.

    .venv/bin/python -m bench.adapter
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
from typing import Any

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

from chat.engine.adapter import TurnAdapter

TOOL_CALLS = 5
TEXT_DELTAS = 200
TURNS_PER_ROUND = 500
ROUNDS = 7
TARGET_CHUNKS_PER_SECOND = 50_000

MODEL = "claude-sonnet-5"
SESSION_ID = "5f0c8a52-7a43-4c1e-9f55-0d7e0a3c2b11"
TOOL_NAME = "mcp__copilot__run_block"
TOOL_INPUT = {"block": "wait", "input": {"seconds": 0}}
COMPLETION_ORDER = [3, 0, 1, 2, 4]  # parallel calls finish out of order, as the CLI reports them


def record_stream() -> list[Any]:
    """One turn's SDK messages, in the order the CLI sends them."""
    counter = iter(range(1_000_000))

    def uid() -> str:
        return f"00000000-0000-4000-8000-{next(counter):012d}"

    def event(payload: dict[str, Any]) -> StreamEvent:
        return StreamEvent(uuid=uid(), session_id=SESSION_ID, event=payload)

    def message_start(message_id: str, input_tokens: int) -> StreamEvent:
        return event({"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": MODEL, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}})

    def status() -> SystemMessage:
        return SystemMessage(subtype="status", data={"type": "system", "subtype": "status", "status": "requesting",
                                                     "session_id": SESSION_ID, "uuid": uid()})

    tool_ids = [f"toolu_{index:024x}" for index in range(TOOL_CALLS)]
    words = [f"word{index} " for index in range(TEXT_DELTAS - 1)] + [f"word{TEXT_DELTAS - 1}."]
    stream: list[Any] = [
        SystemMessage(subtype="init", data={
            "type": "system", "subtype": "init", "cwd": "/srv/copilot/var/workspaces/" + SESSION_ID,
            "session_id": SESSION_ID, "tools": ["mcp__copilot__list_blocks", TOOL_NAME],
            "mcp_servers": [{"name": "copilot", "status": "connected", "source": "sdk"}], "model": MODEL,
            "permissionMode": "default", "slash_commands": ["compact", "context", "cost"], "apiKeySource": "none",
            "output_style": "default", "agents": [], "skills": [], "plugins": [], "uuid": uid()}),
        status(),
    ]

    # Step 1: five parallel tool calls. The CLI emits each call's AssistantMessage before its block stops.
    first_message = "msg_0000000000000000000000a1"
    stream.append(message_start(first_message, 690))
    for index, tool_id in enumerate(tool_ids):
        stream.append(event({"type": "content_block_start", "index": index, "content_block": {
            "type": "tool_use", "id": tool_id, "name": TOOL_NAME, "input": {}}}))
        stream.append(event({"type": "content_block_delta", "index": index, "delta": {
            "type": "input_json_delta", "partial_json": json.dumps(TOOL_INPUT)}}))
        stream.append(AssistantMessage(
            content=[ToolUseBlock(id=tool_id, name=TOOL_NAME, input=dict(TOOL_INPUT))], model=MODEL,
            usage={"input_tokens": 690, "output_tokens": 1}, message_id=first_message, session_id=SESSION_ID,
            uuid=uid()))
        stream.append(event({"type": "content_block_stop", "index": index}))
    stream.append(event({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                         "usage": {"output_tokens": 187}}))
    stream.append(event({"type": "message_stop"}))
    for index in COMPLETION_ORDER:
        result = [{"type": "text", "text": json.dumps({"seconds": 0})}]
        stream.append(UserMessage(content=[ToolResultBlock(tool_use_id=tool_ids[index], content=result)],
                                  uuid=uid(), tool_use_result={"content": result}))
    stream.append(status())

    # Step 2: the answer, one word per text_delta.
    second_message = "msg_0000000000000000000000a2"
    stream.append(message_start(second_message, 1092))
    stream.append(event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
    for word in words:
        stream.append(event({"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": word}}))
    stream.append(AssistantMessage(
        content=[TextBlock(text="".join(words))], model=MODEL, usage={"input_tokens": 1092, "output_tokens": 1},
        message_id=second_message, session_id=SESSION_ID, uuid=uid()))
    stream.append(event({"type": "content_block_stop", "index": 0}))
    stream.append(event({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                         "usage": {"output_tokens": 229}}))
    stream.append(event({"type": "message_stop"}))
    stream.append(ResultMessage(
        subtype="success", duration_ms=171, duration_api_ms=82, is_error=False, num_turns=2, session_id=SESSION_ID,
        stop_reason="end_turn", total_cost_usd=0.0077, result="".join(words), uuid=uid(),
        usage={"input_tokens": 1782, "output_tokens": 416, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 0}))
    return stream


def feed_turns(stream: list[Any], turns: int) -> int:
    """Feed the stream through `turns` fresh adapters; returns the chunks produced."""
    produced = 0
    for _ in range(turns):
        adapter = TurnAdapter()
        feed = adapter.feed
        for message in stream:
            produced += len(feed(message))
    return produced


def build_dicts(chunks_per_turn: int, turns: int) -> int:
    """Baseline: the same number of chunk-sized dicts, built in a trivial loop."""
    produced = 0
    for _ in range(turns):
        out = []
        for index in range(chunks_per_turn):
            out.append({"type": "text-delta", "id": "text-5", "delta": index})
        produced += len(out)
    return produced


def timed(fn, *args) -> tuple[float, int]:
    start = time.perf_counter()
    produced = fn(*args)
    return time.perf_counter() - start, produced


def pin_to_one_core() -> str:
    try:
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to CPU {core}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity here)"


def main() -> None:
    pinned = pin_to_one_core()
    stream = record_stream()
    chunks_per_turn = feed_turns(stream, 1)
    kinds: dict[str, int] = {}
    adapter = TurnAdapter()
    for message in stream:
        for chunk in adapter.feed(message):
            kinds[chunk["type"]] = kinds.get(chunk["type"], 0) + 1
    assert kinds.get("tool-output-available") == TOOL_CALLS and kinds.get("text-delta") == TEXT_DELTAS, kinds

    # Warm up both loops, then alternate rounds so drift hits both alike; keep the best round of each.
    feed_turns(stream, 50)
    build_dicts(chunks_per_turn, 50)
    adapter_times, baseline_times = [], []
    gc.collect()
    for _ in range(ROUNDS):
        elapsed, produced = timed(feed_turns, stream, TURNS_PER_ROUND)
        assert produced == chunks_per_turn * TURNS_PER_ROUND
        adapter_times.append(elapsed)
        elapsed, produced = timed(build_dicts, chunks_per_turn, TURNS_PER_ROUND)
        baseline_times.append(elapsed)

    total_chunks = chunks_per_turn * TURNS_PER_ROUND
    best_adapter, best_baseline = min(adapter_times), min(baseline_times)
    adapter_rate, baseline_rate = total_chunks / best_adapter, total_chunks / best_baseline
    messages_rate = len(stream) * TURNS_PER_ROUND / best_adapter

    print("bench.adapter: TurnAdapter.feed on a recorded turn stream (one core)")
    print(f"  {pinned}; {ROUNDS} rounds of {TURNS_PER_ROUND} turns each, alternating with the baseline; "
          f"best round reported (median round: adapter {total_chunks / statistics.median(adapter_times):,.0f} "
          f"chunks/s, baseline {total_chunks / statistics.median(baseline_times):,.0f} dicts/s)")
    print(f"  stream per turn: {len(stream)} SDK messages -> {chunks_per_turn} chunks "
          f"({TOOL_CALLS} parallel tool calls, {TEXT_DELTAS} text deltas)")
    print(f"  chunk kinds per turn: {', '.join(f'{k} {v}' for k, v in kinds.items())}")
    print(f"  adapter:   {adapter_rate:12,.0f} chunks/s   ({messages_rate:,.0f} SDK messages/s, "
          f"{best_adapter / TURNS_PER_ROUND * 1e6:,.1f} us per turn, "
          f"{best_adapter / total_chunks * 1e6:.2f} us per chunk)")
    print(f"  baseline:  {baseline_rate:12,.0f} dicts/s    (a loop that only builds {chunks_per_turn} dicts per turn, "
          f"{best_baseline / total_chunks * 1e6:.3f} us per dict)")
    print(f"  ratio adapter/baseline time per chunk: {best_adapter / best_baseline:.1f}x")
    verdict = "meets" if adapter_rate >= TARGET_CHUNKS_PER_SECOND else "MISSES"
    print(f"  target >= {TARGET_CHUNKS_PER_SECOND:,} chunks/s: {verdict} ({adapter_rate / TARGET_CHUNKS_PER_SECOND:.1f}x "
          f"the target)")


if __name__ == "__main__":
    main()

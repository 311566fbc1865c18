"""Turn engine scenarios (PROTOCOL §2) with the real SDK, the real CLI and local-model scripts; no socket."""

from __future__ import annotations

import os
import signal
import uuid

import pytest
from channels.db import database_sync_to_async

from agents.blocks import Block, register
from chat.engine.registry import begin_turn, running_turns
from chat.errors import TurnRunning
from chat.models import Message, ToolCallStatus, Turn, TurnStatus
from tests.factories import (
    EventWatcher,
    assert_turn_well_formed,
    chunk_types,
    make_session,
    make_user,
    outputs_by_id,
    pid_alive,
    rows,
    run_turn,
    script,
    streamed_text,
    wait_tool,
    wait_until_gone,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_turn_left_running")]


@database_sync_to_async
def new_session():
    return make_session(make_user())




async def test_text_only():
    session = await new_session()
    events, turn, calls = await run_turn(session, script({"text": "Just words, no tools."}))
    assert_turn_well_formed(events)
    types = chunk_types(events)
    deltas = types.count("text-delta")
    assert 1 <= deltas <= 4  # the model's four words, merged when they come fast (DELTA_WINDOW_MS)
    assert types == ["start", "data-user-message", "start-step", "text-start"] + ["text-delta"] * deltas + [
        "text-end", "finish-step", "data-usage", "data-turn", "finish"]  # usage just before data-turn (PROTOCOL §8)
    assert streamed_text(events) == "Just words, no tools."
    assert turn.status == TurnStatus.COMPLETED and turn.assistant_message.text == "Just words, no tools."
    assert calls == []


async def test_one_tool_then_answer():
    session = await new_session()
    text = script({"tools": [{"name": "mcp__copilot__run_block",
                              "input": {"block": "text", "input": {"template": "Hi {n}", "values": {"n": "Ada"}}}}]},
                  {"text": "Said hi."})
    events, turn, calls = await run_turn(session, text)
    assert_turn_well_formed(events)
    [output] = outputs_by_id(events).values()
    assert output["output"] == {"text": "Hi Ada"}
    assert [(c.status, c.output) for c in calls] == [(ToolCallStatus.COMPLETED, {"text": "Hi Ada"})]
    assert chunk_types(events).count("start-step") == 2


async def test_parallel_calls_of_the_same_tool_with_the_same_input_keep_their_own_outputs():
    session = await new_session()
    events, turn, calls = await run_turn(session, script({"tools": [wait_tool(0.5), wait_tool(0.5)]}, {"text": "ok"}))
    assert_turn_well_formed(events)
    inputs = [e["chunk"]["toolCallId"] for e in events if e["chunk"]["type"] == "tool-input-available"]
    assert len(set(inputs)) == 2
    assert set(outputs_by_id(events)) == set(inputs)
    assert sorted(c.tool_use_id for c in calls) == sorted(inputs)
    assert all(c.status == ToolCallStatus.COMPLETED and c.output == {"seconds": 0.5} for c in calls)


async def test_tools_in_two_successive_steps():
    session = await new_session()
    events, turn, calls = await run_turn(session, script({"tools": [wait_tool(0)]}, {"tools": [wait_tool(0.1)]},
                                                         {"text": "two steps"}))
    assert_turn_well_formed(events)
    types = chunk_types(events)
    assert types.count("start-step") == 3 and types.count("finish-step") == 3
    assert [c.output for c in calls] == [{"seconds": 0}, {"seconds": 0.1}]
    assert calls[0].part_index < calls[1].part_index


async def test_stop_mid_tool_ends_the_cli_and_interrupts_the_calls():
    session = await new_session()
    async with EventWatcher(session.id) as watcher:
        started = await begin_turn(session=session, text=script({"tools": [wait_tool(30), wait_tool(25)]}),
                                   client_message_id=uuid.uuid4())
        await watcher.until(lambda c: c["type"] == "tool-input-available" and c["input"]["input"]["seconds"] == 25)
        cli_pid = running_turns._runners[str(session.id)].cli_pid
        assert cli_pid and pid_alive(cli_pid)
        await running_turns.request_stop(str(session.id))
        await running_turns.request_stop(str(session.id))  # a repeated stop is harmless
        events = await watcher.until_finish(timeout=10)
    await wait_until_gone(cli_pid, timeout=5)
    assert_turn_well_formed(events)
    assert {o["type"] for o in outputs_by_id(events).values()} == {"tool-output-error"}
    assert all("interrupted" in o["errorText"] for o in outputs_by_id(events).values()), outputs_by_id(events)
    assert events[-2]["chunk"]["data"]["status"] == "stopped"
    assert "error" not in chunk_types(events)
    turn, calls = await rows(started.turn.id)
    assert turn.status == TurnStatus.STOPPED
    assert {c.status for c in calls} == {ToolCallStatus.INTERRUPTED}
    # the session takes the next message
    events, turn, _ = await run_turn(session, script({"text": "back again"}))
    assert turn.status == TurnStatus.COMPLETED


async def test_stop_between_steps():
    session = await new_session()
    async with EventWatcher(session.id) as watcher:
        started = await begin_turn(session=session, client_message_id=uuid.uuid4(), text=script(
            {"tools": [wait_tool(0)]}, {"text": "this answer streams slowly enough to be stopped", "delay_ms": 500}))
        await watcher.until(lambda c: c["type"] == "tool-output-available")
        await running_turns.request_stop(str(session.id))
        events = await watcher.until_finish(timeout=15)
    assert_turn_well_formed(events)
    assert events[-2]["chunk"]["data"]["status"] == "stopped"
    turn, calls = await rows(started.turn.id)
    assert turn.status == TurnStatus.STOPPED and calls[0].status == ToolCallStatus.COMPLETED


async def test_overloaded_then_success_shows_the_retry_and_the_answer_once():
    session = await new_session()
    events, turn, _ = await run_turn(session, script({"error": "overloaded", "error_times": 1, "text": "Recovered."}))
    assert_turn_well_formed(events)
    retries = [e["chunk"]["data"] for e in events if e["chunk"]["type"] == "data-retry"]
    assert len(retries) == 1 and retries[0]["status"] == 529 and retries[0]["attempt"] == 1
    assert streamed_text(events) == "Recovered."
    assert turn.status == TurnStatus.COMPLETED and turn.assistant_message.text == "Recovered."


async def test_model_dropping_every_time_fails_the_turn_with_a_clear_error(copilot_settings):
    session = await new_session()
    events, turn, _ = await run_turn(session, script({"error": "drop", "text": "never whole"}), timeout=60)
    assert_turn_well_formed(events)
    retries = [e["chunk"]["data"] for e in events if e["chunk"]["type"] == "data-retry"]
    assert len(retries) == copilot_settings["MODEL_RETRIES"]
    assert streamed_text(events) == ""  # every cut attempt is discarded
    [error] = [e["chunk"]["errorText"] for e in events if e["chunk"]["type"] == "error"]
    assert error
    assert events[-2]["chunk"]["data"]["status"] == "failed"
    assert turn.status == TurnStatus.FAILED and turn.error == error
    assert turn.assistant_message.text == ""


async def test_cli_killed_mid_tool_fails_the_turn_and_interrupts_the_call():
    session = await new_session()
    async with EventWatcher(session.id) as watcher:
        started = await begin_turn(session=session, text=script({"tools": [wait_tool(30)]}),
                                   client_message_id=uuid.uuid4())
        await watcher.until(lambda c: c["type"] == "tool-input-available")
        os.kill(running_turns._runners[str(session.id)].cli_pid, signal.SIGKILL)
        events = await watcher.until_finish(timeout=20)
    assert_turn_well_formed(events)
    assert "error" in chunk_types(events)
    assert events[-2]["chunk"]["data"]["status"] == "failed"
    [output] = outputs_by_id(events).values()
    assert output["type"] == "tool-output-error" and "interrupted" in output["errorText"]
    turn, calls = await rows(started.turn.id)
    assert turn.status == TurnStatus.FAILED and calls[0].status == ToolCallStatus.INTERRUPTED


async def test_a_tool_that_raises_is_an_error_output_and_the_turn_goes_on():
    async def explode(block_input):
        raise RuntimeError("the block blew up")

    register(Block(name="explode", description="Always raises (test only).", input_schema={"type": "object"},
                   output_schema={"type": "object"}, run=explode))
    session = await new_session()
    events, turn, calls = await run_turn(session, script(
        {"tools": [{"name": "mcp__copilot__run_block", "input": {"block": "explode", "input": {}}}]},
        {"text": "It failed, sorry."}))
    assert_turn_well_formed(events)
    [output] = outputs_by_id(events).values()
    assert output["type"] == "tool-output-error" and "blew up" in output["errorText"]
    assert turn.status == TurnStatus.COMPLETED and streamed_text(events) == "It failed, sorry."
    assert calls[0].status == ToolCallStatus.FAILED and "blew up" in calls[0].error_text


async def test_very_large_tool_output_is_truncated_in_the_event_and_kept_whole(copilot_settings, settings):
    settings.COPILOT = {**copilot_settings, "TOOL_OUTPUT_EVENT_CHARS": 1000}
    session = await new_session()
    big = "x" * 20_000
    events, turn, calls = await run_turn(session, script(
        {"tools": [{"name": "mcp__copilot__run_block", "input": {"block": "text", "input": {"template": big}}}]}))
    [output] = outputs_by_id(events).values()
    assert output["output"]["truncated"] is True and len(output["output"]["preview"]) == 1000
    assert "20,0" in output["output"]["note"]
    assert calls[0].output == {"text": big}


async def test_second_send_while_running_is_refused_and_the_same_id_starts_nothing_new():
    session = await new_session()
    client_message_id = uuid.uuid4()
    async with EventWatcher(session.id) as watcher:
        first = await begin_turn(session=session, text=script({"tools": [wait_tool(1)]}),
                                 client_message_id=client_message_id)
        again = await begin_turn(session=session, text="whatever", client_message_id=client_message_id)
        assert again.created is False and again.turn.id == first.turn.id
        with pytest.raises(TurnRunning):
            await begin_turn(session=session, text="another", client_message_id=uuid.uuid4())
        await watcher.until_finish()
    after = await begin_turn(session=session, text="x", client_message_id=client_message_id)
    assert after.turn.id == first.turn.id and after.created is False
    assert await database_sync_to_async(lambda: Turn.objects.filter(session=session).count())() == 1
    assert await database_sync_to_async(lambda: Message.objects.filter(session=session).count())() == 2


async def test_shutdown_mid_turn_interrupts_it_cleanly():
    session = await new_session()
    async with EventWatcher(session.id) as watcher:
        started = await begin_turn(session=session, text=script({"tools": [wait_tool(30)]}),
                                   client_message_id=uuid.uuid4())
        await watcher.until(lambda c: c["type"] == "tool-input-available")
        cli_pid = running_turns._runners[str(session.id)].cli_pid
        await running_turns.shutdown()
        events = await watcher.until_finish(timeout=5)
    assert_turn_well_formed(events)
    assert events[-2]["chunk"]["data"]["status"] == "interrupted"
    turn, calls = await rows(started.turn.id)
    assert turn.status == TurnStatus.INTERRUPTED and calls[0].status == ToolCallStatus.INTERRUPTED
    await wait_until_gone(cli_pid, timeout=15)


async def test_a_failed_model_request_after_a_finished_step_keeps_that_step():
    session = await new_session()
    events, turn, calls = await run_turn(session, script(
        {"text": "First step.", "tools": [wait_tool(0)]},
        {"error": "api_error", "error_times": 1, "text": "Second step."}))
    assert_turn_well_formed(events)
    retry = next(e["chunk"]["data"] for e in events if e["chunk"]["type"] == "data-retry")
    assert retry["discard"] == [] and retry["status"] == 500
    assert streamed_text(events) == "First step.Second step."
    assert turn.assistant_message.text == "First step.Second step."
    assert calls[0].status == ToolCallStatus.COMPLETED


async def test_a_long_silent_tool_keeps_the_heartbeat_fresh_and_loses_nothing(settings, copilot_settings):
    from chat.engine.reaper import reap_stale_turns

    settings.COPILOT = {**copilot_settings, "STALE_TURN_SECONDS": 4}  # heartbeat every second
    session = await new_session()
    async with EventWatcher(session.id) as watcher:
        started = await begin_turn(session=session, text=script({"tools": [wait_tool(3)]}, {"text": "still here"}),
                                   client_message_id=uuid.uuid4())
        await watcher.until(lambda c: c["type"] == "tool-input-available")
        first_beat = (await rows(started.turn.id))[0].heartbeat_at
        # Wait for the tool's own output, then look at what the silent seconds did.
        await watcher.until(lambda c: c["type"] == "tool-output-available")
        turn, _ = await rows(started.turn.id)
        assert turn.heartbeat_at > first_beat
        assert await reap_stale_turns() == []  # a live turn is never reaped
        events = await watcher.until_finish()
    assert_turn_well_formed(events)
    assert streamed_text(events) == "still here"


async def test_an_exception_in_the_sdk_stream_fails_the_turn_cleanly(monkeypatch):
    from claude_agent_sdk import ClaudeSDKClient

    real_receive = ClaudeSDKClient.receive_response

    async def breaking_receive(self):
        # A fake only in this: the real SDK stream, broken after the first tool call shows.
        async for message in real_receive(self):
            yield message
            if type(message).__name__ == "AssistantMessage" and any(
                    type(block).__name__ == "ToolUseBlock" for block in message.content):
                raise RuntimeError("the SDK stream broke")

    monkeypatch.setattr(ClaudeSDKClient, "receive_response", breaking_receive)
    session = await new_session()
    events, turn, calls = await run_turn(session, script({"tools": [wait_tool(5)]}))
    assert_turn_well_formed(events)
    [error] = [e["chunk"]["errorText"] for e in events if e["chunk"]["type"] == "error"]
    assert "the SDK stream broke" in error
    assert turn.status == TurnStatus.FAILED and calls[0].status == ToolCallStatus.INTERRUPTED
    monkeypatch.undo()
    _, next_turn, _ = await run_turn(session, script({"text": "fine again"}))
    assert next_turn.status == TurnStatus.COMPLETED


async def test_a_prompt_too_long_for_the_model_fails_with_its_reason(local_model):
    local_model.model.max_input_tokens = 50
    try:
        session = await new_session()
        events, turn, _ = await run_turn(session, script({"text": "never"}))
    finally:
        local_model.model.max_input_tokens = None
    assert_turn_well_formed(events)
    [error] = [e["chunk"]["errorText"] for e in events if e["chunk"]["type"] == "error"]
    assert "too long" in error.lower()
    assert turn.status == TurnStatus.FAILED

"""The local model, driven by the real `anthropic` client: every `#script` feature and each fault."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import pytest

from tests.factories import script, wait_tool

MODEL = "claude-sonnet-5"


@pytest.fixture
def client(local_model):
    return anthropic.Anthropic(base_url=local_model.url, api_key="test", max_retries=0)


def ask(client, text, *, history=()):
    return [*history, {"role": "user", "content": text}]


def test_streams_text_as_the_real_api_does(client):
    with client.messages.stream(model=MODEL, max_tokens=100,
                                messages=ask(client, script({"text": "Hello there, friend."}))) as stream:
        events = [event.type for event in stream]
        message = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_start" in events and "content_block_stop" in events and "message_delta" in events
    assert events.count("text") >= 3  # about one delta a word
    assert message.content[0].text == "Hello there, friend."
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


def test_parallel_tool_calls_are_blocks_of_one_response(client):
    text = script({"text": "Running.", "tools": [wait_tool(1), wait_tool(2), wait_tool(1)]})
    with client.messages.stream(model=MODEL, max_tokens=100, messages=ask(client, text)) as stream:
        message = stream.get_final_message()
    tool_uses = [block for block in message.content if block.type == "tool_use"]
    assert message.stop_reason == "tool_use"
    assert [block.input for block in tool_uses] == [wait_tool(1)["input"], wait_tool(2)["input"], wait_tool(1)["input"]]
    assert len({block.id for block in tool_uses}) == 3


def test_each_tool_round_plays_the_next_step_then_done(client):
    text = script({"tools": [wait_tool(0)]}, {"text": "second step"})
    first = client.messages.create(model=MODEL, max_tokens=100, messages=ask(client, text))
    tool_use = first.content[0]
    history = [{"role": "user", "content": text}, {"role": "assistant", "content": [tool_use.model_dump()]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "{}"}]}]
    second = client.messages.create(model=MODEL, max_tokens=100, messages=history)
    assert second.content[0].text == "second step"
    history += [{"role": "assistant", "content": [{"type": "text", "text": "second step"}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": "{}"}]}]
    third = client.messages.create(model=MODEL, max_tokens=100, messages=history)
    assert third.content[0].text == "done."


def test_overloaded_is_http_529(client):
    with pytest.raises(anthropic.APIStatusError) as failure:
        client.messages.create(model=MODEL, max_tokens=10, messages=ask(client, script({"error": "overloaded"})))
    assert failure.value.status_code == 529
    assert failure.value.body["error"]["type"] == "overloaded_error"


def test_api_error_is_http_500(client):
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(model=MODEL, max_tokens=10, messages=ask(client, script({"error": "api_error"})))


def test_error_times_fails_that_many_times_then_succeeds(client):
    messages = ask(client, script({"error": "api_error", "error_times": 2, "text": "finally"}) + "\nnonce-1")
    for _ in range(2):
        with pytest.raises(anthropic.InternalServerError):
            client.messages.create(model=MODEL, max_tokens=10, messages=messages)
    assert client.messages.create(model=MODEL, max_tokens=10, messages=messages).content[0].text == "finally"


def test_drop_cuts_the_stream_mid_answer(local_model):
    body = {"model": MODEL, "max_tokens": 10, "stream": True,
            "messages": [{"role": "user", "content": script({"error": "drop", "text": "never whole"})}]}
    received = b""
    with pytest.raises(httpx.HTTPError):
        with httpx.stream("POST", f"{local_model.url}/v1/messages", json=body, timeout=10) as response:
            for chunk in response.iter_raw():
                received += chunk
    assert b"message_start" in received and b"text_delta" in received
    assert b"message_stop" not in received


def test_delay_ms_spaces_the_streamed_events(client):
    started = time.monotonic()
    client.messages.create(model=MODEL, max_tokens=10, stream=False,
                           messages=ask(client, script({"text": "x"})))
    fast = time.monotonic() - started
    started = time.monotonic()
    with client.messages.stream(model=MODEL, max_tokens=10,
                                messages=ask(client, script({"text": "one two three", "delay_ms": 100}))) as stream:
        stream.get_final_message()
    # message_start, block start, 3 deltas, block stop, message_delta, message_stop: 8 pauses of 100 ms
    assert time.monotonic() - started >= 0.8 > fast


def test_count_tokens(client):
    counted = client.messages.count_tokens(model=MODEL, messages=ask(client, "hello " * 100))
    assert counted.input_tokens > 10


def test_unscripted_demo_calls_tools_when_asked(client):
    reply = client.messages.create(model=MODEL, max_tokens=100, messages=ask(client, "please wait 2 seconds"))
    tool_use = next(block for block in reply.content if block.type == "tool_use")
    assert tool_use.name == "mcp__copilot__run_block"
    assert tool_use.input == {"block": "wait", "input": {"seconds": 2}}
    plain = client.messages.create(model=MODEL, max_tokens=100, messages=ask(client, "hi"))
    assert "local model" in plain.content[0].text


def test_a_bad_script_is_answered_not_crashed(client):
    reply = client.messages.create(model=MODEL, max_tokens=100, messages=ask(client, "#script {not json"))
    assert "could not be played" in reply.content[0].text


def test_malformed_requests_get_api_errors(local_model):
    response = httpx.post(f"{local_model.url}/v1/messages", content=b"nope", timeout=5)
    assert response.status_code == 400
    assert json.loads(response.text)["error"]["type"] == "invalid_request_error"

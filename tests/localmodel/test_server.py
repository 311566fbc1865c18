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


def test_echo_says_which_user_messages_the_request_holds(client):
    history = [{"role": "user", "content": "first question"},
               {"role": "assistant", "content": [{"type": "text", "text": "an answer"}]},
               {"role": "user", "content": [{"type": "text", "text": "<system-reminder>\nnoise\n</system-reminder>"},
                                            {"type": "text", "text": "second\n" + script({"echo": "user_messages"})}]}]
    reply = client.messages.create(model=MODEL, max_tokens=100, messages=history)
    assert json.loads(reply.content[0].text) == ["first question", "second\n" + script({"echo": "user_messages"})]


def test_echo_leaves_tool_results_out(client):
    text = script({"tools": [wait_tool(0)]}, {"echo": "user_messages"})
    first = client.messages.create(model=MODEL, max_tokens=100, messages=ask(client, text))
    history = [{"role": "user", "content": text}, {"role": "assistant", "content": [first.content[0].model_dump()]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first.content[0].id,
                                             "content": "{}"}]}]
    assert json.loads(client.messages.create(model=MODEL, max_tokens=100, messages=history).content[0].text) == [text]


def test_an_unknown_echo_is_a_script_error(client):
    reply = client.messages.create(model=MODEL, max_tokens=100, messages=ask(client, script({"echo": "everything"})))
    assert "could not be played" in reply.content[0].text


def test_usage_counts_the_whole_prompt_and_its_cached_prefix(client):
    system = [{"type": "text", "text": "You are a careful assistant. " * 300, "cache_control": {"type": "ephemeral"}}]
    tools = [{"name": "lookup", "description": "Looks things up. " * 50,
              "input_schema": {"type": "object", "properties": {}}}]
    prompt = ask(client, script({"text": "Cached, or not."}) + "\nusage-nonce-" + str(time.monotonic()))
    bare = client.messages.create(model=MODEL, max_tokens=100, messages=prompt)
    first = client.messages.create(model=MODEL, max_tokens=100, system=system, tools=tools, messages=prompt)
    with client.messages.stream(model=MODEL, max_tokens=100, system=system, tools=tools, messages=prompt) as stream:
        second = stream.get_final_message()
    assert first.usage.cache_creation_input_tokens > 1_024 and first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert first.usage.input_tokens == second.usage.input_tokens < bare.usage.input_tokens + 50  # what follows the mark
    assert bare.usage.cache_read_input_tokens == bare.usage.cache_creation_input_tokens == 0  # too short to cache
    assert second.usage.output_tokens == first.usage.output_tokens > 1


def test_asked_for_a_title_it_answers_the_first_words_in_title_case(client):
    reply = client.messages.create(model=MODEL, max_tokens=20, system="Write a title for this conversation.",
                                   messages=ask(client, "User: plan a weekend trip to lisbon in may please\nmore"))
    assert reply.content[0].text == "Plan A Weekend Trip To Lisbon"


def test_a_model_it_does_not_have_is_404(client):
    with pytest.raises(anthropic.NotFoundError) as failure:
        client.messages.create(model="unknown-model-9", max_tokens=10, messages=ask(client, "hi"))
    assert failure.value.body["error"]["type"] == "not_found_error"


def test_a_longer_prompt_reads_the_cached_prefix_and_writes_the_rest(client):
    system = [{"type": "text", "text": "Stable instructions. " * 400 + str(time.monotonic()),
               "cache_control": {"type": "ephemeral"}}]
    history = [{"role": "user", "content": [{"type": "text", "text": "question " * 600,
                                             "cache_control": {"type": "ephemeral"}}]}]
    first = client.messages.create(model=MODEL, max_tokens=10, system=system, messages=history)
    assert first.usage.cache_read_input_tokens == 0
    history += [{"role": "assistant", "content": "an answer"},
                {"role": "user", "content": [{"type": "text", "text": "and more " * 600 + script({"text": "ok"}),
                                              "cache_control": {"type": "ephemeral"}}]}]
    history[0]["content"][0].pop("cache_control")
    second = client.messages.create(model=MODEL, max_tokens=10, system=system, messages=history)
    assert 0 < second.usage.cache_read_input_tokens < first.usage.cache_creation_input_tokens  # the system prompt
    assert second.usage.cache_creation_input_tokens > 1_000  # from there to the new mark

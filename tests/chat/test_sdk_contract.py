"""What we rely on in the Claude Agent SDK and its CLI, pinned: an upgrade that changes it fails here first."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from chat.engine.binding import SessionBinding, TurnBinding
from chat.engine.options import session_options, tool_gate
from tests.factories import script, wait_tool

FIELDS_WE_READ = {
    AssistantMessage: {"content", "message_id", "error", "session_id", "parent_tool_use_id"},
    UserMessage: {"content", "parent_tool_use_id"},
    StreamEvent: {"event", "parent_tool_use_id"},
    SystemMessage: {"subtype", "data"},
    ResultMessage: {"subtype", "is_error", "result", "session_id"},
    ToolUseBlock: {"id", "name", "input"},
    ToolResultBlock: {"tool_use_id", "content", "is_error"},
}
OPTIONS_WE_SET = {"model", "system_prompt", "tools", "mcp_servers", "allowed_tools", "include_partial_messages",
                  "setting_sources", "cwd", "resume", "session_store", "env", "stderr", "can_use_tool", "hooks",
                  "cli_path"}


@pytest.mark.parametrize("message_class", list(FIELDS_WE_READ), ids=lambda cls: cls.__name__)
def test_message_classes_keep_the_fields_we_read(message_class):
    fields = {field.name for field in dataclasses.fields(message_class)}
    missing = FIELDS_WE_READ[message_class] - fields
    assert not missing, f"the SDK's {message_class.__name__} lost {missing}: update chat/engine/adapter.py"


def test_options_and_client_keep_what_we_use():
    fields = {field.name for field in dataclasses.fields(ClaudeAgentOptions)}
    assert OPTIONS_WE_SET <= fields, f"ClaudeAgentOptions lost {OPTIONS_WE_SET - fields}"
    for method in ("connect", "query", "receive_response", "interrupt", "disconnect"):
        assert inspect.iscoroutinefunction(getattr(ClaudeSDKClient, method)) or inspect.isasyncgenfunction(
            getattr(ClaudeSDKClient, method)), f"ClaudeSDKClient.{method} changed"


def our_options(session_id: str):
    """The engine's own options for a session's CLI, bound to one turn, as the engine connects one."""
    binding = SessionBinding.for_one_turn(session_id, TurnBinding(turn_id="contract", gate=tool_gate(session_id=session_id)))
    return session_options(session_id=session_id, owner_id=None, binding=binding)


async def raw_turn(prompt: str, *, session_id: str) -> list:
    """The raw SDK loop with our options: every message the SDK yields, in order."""
    messages = []
    async with ClaudeSDKClient(our_options(session_id)) as client:
        await client.query(prompt)
        async for message in client.receive_response():
            messages.append(message)
    return messages


@pytest.mark.django_db(transaction=True)
async def test_parallel_tool_calls_arrive_as_separate_assistant_messages_with_one_message_id(tmp_path):
    messages = await raw_turn(script({"tools": [wait_tool(0.3), wait_tool(0.1)]}, {"text": "ok"}),
                              session_id="contract-parallel")
    tool_messages = [m for m in messages if isinstance(m, AssistantMessage)
                     and any(isinstance(b, ToolUseBlock) for b in m.content)]
    assert len(tool_messages) == 2 and all(len(m.content) == 1 for m in tool_messages)
    assert tool_messages[0].message_id == tool_messages[1].message_id
    results = [b for m in messages if isinstance(m, UserMessage) and not isinstance(m.content, str)
               for b in m.content if isinstance(b, ToolResultBlock)]
    # each result its own UserMessage, in the order the tools finish (0.1 s before 0.3 s)
    assert [r.tool_use_id for r in results] == [tool_messages[1].content[0].id, tool_messages[0].content[0].id]
    assert any(isinstance(m, StreamEvent) and m.event["type"] == "content_block_delta" for m in messages)
    assert isinstance(messages[-1], ResultMessage) and not messages[-1].is_error


@pytest.mark.django_db(transaction=True)
async def test_a_failing_model_is_retried_with_api_retry_then_reported_as_an_error_result(copilot_settings):
    messages = await raw_turn(script({"error": "api_error"}), session_id="contract-retry")
    retries = [m for m in messages if isinstance(m, SystemMessage) and m.subtype == "api_retry"]
    assert len(retries) == copilot_settings["MODEL_RETRIES"]
    assert {"attempt", "max_retries", "retry_delay_ms", "error_status"} <= set(retries[0].data)
    assert retries[0].data["error_status"] == 500
    errors = [m for m in messages if isinstance(m, AssistantMessage) and m.error is not None]
    assert errors and "API Error" in "".join(getattr(b, "text", "") for b in errors[-1].content)
    result = messages[-1]
    assert isinstance(result, ResultMessage) and result.is_error  # not an exception, not a normal answer


@pytest.mark.django_db(transaction=True)
async def test_interrupt_ends_the_turn_with_a_result():
    async with ClaudeSDKClient(our_options("contract-interrupt")) as client:
        await client.query(script({"tools": [wait_tool(30)]}))
        seen = []
        async for message in client.receive_response():
            seen.append(message)
            if isinstance(message, AssistantMessage) and any(isinstance(b, ToolUseBlock) for b in message.content):
                await client.interrupt()
    assert isinstance(seen[-1], ResultMessage)
    interrupted = [b for m in seen if isinstance(m, UserMessage) and not isinstance(m.content, str)
                   for b in m.content if isinstance(b, ToolResultBlock)]
    assert interrupted and interrupted[0].is_error

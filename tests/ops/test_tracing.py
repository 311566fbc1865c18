"""Traces (PROTOCOL §9) from the OpenTelemetry SDK's in-memory exporter: the span tree of real turns, their
attributes (ids, tools, statuses, token counts; never text), the trace context the CLI is started with, and a
real server sending its spans to an OTLP/HTTP collector."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import websockets
from channels.db import database_sync_to_async
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import StatusCode
from rest_framework.authtoken.models import Token

from agents.blocks import Block, register
from chat.engine import observers
from chat.engine.control import decide_approval
from chat.engine.observers import TurnInfo
from chat.engine.registry import begin_turn, running_turns
from tests.conftest import ServerProcess
from tests.factories import (
    EventWatcher,
    is_finish,
    make_session,
    make_user,
    receive_until,
    script,
    send_frame,
    text_tool,
    wait_tool,
)
from tests.ops.conftest import new_session, run_turn
from tests.security.test_cli_environment import process_environment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_turn_left_running")]
RUN_BLOCK = "mcp__copilot__run_block"


def spans_of_turn(exporter, turn_id: str, name: str | None = None):
    """The turn's span, and its children (those named `name`). The in-process MCP server (the mcp library) adds
    spans of its own under the turn: `initialize`, `tools/list`, `tools/call <tool>`."""
    finished = exporter.get_finished_spans()
    turn = next(span for span in finished if span.name == "copilot.turn" and span.attributes["turn_id"] == turn_id)
    children = [span for span in finished if span.parent is not None and span.parent.span_id == turn.context.span_id
                and (name is None or span.name == name)]
    return turn, children


def every_value(span) -> list[str]:
    values = [str(value) for value in span.attributes.values()]
    return values + [str(value) for event in span.events for value in event.attributes.values()]


async def test_a_turn_with_parallel_tools_is_one_span_with_a_child_per_call(spans):
    session = await new_session()
    secret_prompt = "Tell nobody: the launch code is heron-4417."
    events, turn, calls = await run_turn(session, secret_prompt + "\n" + script(
        {"text": "Running three.", "tools": [wait_tool(0.3), wait_tool(0.6),
                                              text_tool("secret output {x}", {"x": "tern-88"})]},
        {"text": "All three are done, answer kiwi-5."}))

    root, everything = spans_of_turn(spans, str(turn.id))
    children = [span for span in everything if span.name == "copilot.tool_call"]
    assert root.parent is None
    assert root.attributes["session_id"] == str(session.id)
    assert root.attributes["user_id"] == session.owner_id
    assert root.attributes["status"] == "completed"
    assert root.attributes["gen_ai.usage.output_tokens"] == turn.assistant_message.usage["output_tokens"]
    assert root.attributes["gen_ai.usage.input_tokens"] == turn.assistant_message.usage["input_tokens"]
    assert root.status.status_code == StatusCode.UNSET
    assert [event.name for event in root.events] == ["first_token"]

    assert len(children) == 3
    assert {child.attributes["tool_call_id"] for child in children} == {call.tool_use_id for call in calls}
    assert {(child.attributes["tool"], child.attributes["status"]) for child in children} == {(RUN_BLOCK, "completed")}
    assert all(child.context.trace_id == root.context.trace_id for child in children)
    # Parallel: the calls overlap in time, each inside the turn.
    assert max(child.start_time for child in children) < min(child.end_time for child in children)
    assert all(root.start_time <= child.start_time and child.end_time <= root.end_time for child in children)

    for span in [root, *everything]:
        for text in ("heron-4417", "tern-88", "kiwi-5", "secret output", "Running three"):
            assert not any(text in value for value in every_value(span)), (span.name, text)


async def test_a_denied_call_and_a_failing_turn_say_so_on_their_spans(spans):
    session = await new_session()
    events, turn, calls = await run_turn(session, script(
        {"tools": [{"name": "Read", "input": {"file_path": "/etc/shadow"}}]},
        {"error": "api_error"}))

    root, children = spans_of_turn(spans, str(turn.id), "copilot.tool_call")
    assert turn.status == "failed"
    assert root.attributes["status"] == "failed" and root.status.status_code == StatusCode.ERROR
    assert root.status.description is None  # the error's text stays out of the trace
    [call] = children
    assert call.attributes["status"] == "denied" and call.attributes["tool"] == "Read"
    assert [(e.name, dict(e.attributes)) for e in root.events if e.name == "policy_denial"] == [
        ("policy_denial", {"tool": "Read", "kind": "outside_workspace"})]


async def test_a_cli_started_for_a_turn_is_started_inside_the_turns_trace(spans):
    session = await new_session()
    release = asyncio.Event()

    async def hold(block_input):
        await asyncio.wait_for(release.wait(), timeout=30)
        return {"released": True}

    block_name = f"hold-{uuid.uuid4().hex[:8]}"
    register(Block(name=block_name, description="Waits until the test lets go (test only).",
                   input_schema={"type": "object"}, output_schema={"type": "object"}, run=hold))
    async with EventWatcher(session.id) as watcher:
        started = await begin_turn(session=session, client_message_id=uuid.uuid4(), text=script(
            {"tools": [{"name": RUN_BLOCK, "input": {"block": block_name, "input": {}}}]}, {"text": "Released."}))
        await watcher.until(lambda chunk: chunk["type"] == "tool-input-available")
        environment = process_environment(running_turns._runners[str(session.id)].cli_pid)
        release.set()
        await watcher.until_finish()
    await running_turns.task_for(str(session.id))

    root, [cli] = spans_of_turn(spans, str(started.turn.id), "copilot.cli")
    version, trace_id, parent_id, flags = environment["TRACEPARENT"].split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    assert int(trace_id, 16) == root.context.trace_id
    assert cli.parent.span_id == root.context.span_id and not root.links
    assert int(parent_id, 16) == cli.context.span_id  # the CLI's own spans would be children of its span
    assert root.attributes["warm_client"] is False


async def test_waits_are_child_spans_of_their_turn(spans):
    """The turn-control and warm-turns work report waits; their spans, driven through the observers' registry."""
    turn = TurnInfo(session_id=str(uuid.uuid4()), turn_id=str(uuid.uuid4()), user_id=7, model="claude-test")
    with observers.turn_scope(turn):
        observers.notify("wait_started", turn, kind="capacity", key="model")
        observers.notify("wait_ended", turn, kind="capacity", key="model", seconds=0.2, outcome="granted")
        observers.notify("wait_started", turn, kind="approval", key="approval-1")
        observers.notify("turn_ended", turn, status="interrupted", seconds=1.0, usage=None)

    root, children = spans_of_turn(spans, turn.turn_id)
    assert {child.name for child in children} == {"copilot.wait"}
    waits = {(child.attributes["kind"], child.attributes["key"]): child for child in children}
    assert set(waits) == {("capacity", "model"), ("approval", "approval-1")}
    assert waits["capacity", "model"].attributes["outcome"] == "granted"
    assert waits["approval", "approval-1"].attributes["status"] == "interrupted"  # the turn ended while it waited


async def test_a_real_approval_wait_and_a_real_capacity_wait_are_spans_of_their_turns(spans, copilot_settings):
    copilot_settings["MAX_CONCURRENT_TURNS"] = 1
    asking, queued = await new_session(), await new_session()
    await database_sync_to_async(lambda: type(asking).objects.filter(pk=asking.pk).update(approval_mode="ask"))()
    asking.approval_mode = "ask"
    async with EventWatcher(asking.id) as watcher, EventWatcher(queued.id) as behind:
        first = await begin_turn(session=asking, text=script({"tools": [text_tool("x")]}, {"text": "Allowed."}),
                                 client_message_id=uuid.uuid4())
        approval = (await watcher.until(lambda chunk: chunk["type"] == "data-approval"))[-1]["chunk"]["data"]
        second = await begin_turn(session=queued, text=script({"text": "After the slot."}),
                                  client_message_id=uuid.uuid4())  # the one slot is taken: it waits
        await decide_approval(session=asking, approval_id=approval["approval_id"], decision="allow")
        await watcher.until_finish()
        await behind.until_finish()
    for session in (asking, queued):
        task = running_turns.task_for(str(session.id))
        if task is not None:
            await task

    _, children = spans_of_turn(spans, str(first.turn.id))
    [waited_for_a_person] = [child for child in children if child.name == "copilot.wait"]
    assert {name: waited_for_a_person.attributes[name] for name in ("kind", "key", "outcome")} == {
        "kind": "approval", "key": approval["approval_id"], "outcome": "allow by user"}
    _, children = spans_of_turn(spans, str(second.turn.id))
    [waited_for_a_slot] = [child for child in children if child.name == "copilot.wait"]
    assert waited_for_a_slot.attributes["kind"] == "capacity"
    assert waited_for_a_slot.attributes["outcome"] == "started"


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP collector on a loopback port that keeps the spans it is sent (protobuf, POST /v1/traces)."""

    def __init__(self) -> None:
        self.spans: list = []
        self.received = threading.Condition()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler) -> None:
                body = handler.rfile.read(int(handler.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                with self.received:
                    for resource_spans in request.resource_spans:
                        service = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
                        for scope_spans in resource_spans.scope_spans:
                            self.spans += [(handler.path, service.get("service.name"), span)
                                           for span in scope_spans.spans]
                    self.received.notify_all()
                handler.send_response(200)
                handler.send_header("Content-Type", "application/x-protobuf")
                handler.end_headers()

            def log_message(handler, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def wait_for(self, predicate, timeout: float = 20) -> list:
        with self.received:
            assert self.received.wait_for(lambda: predicate(self.spans), timeout), self.spans
            return list(self.spans)


CLI_TELEMETRY = {  # Claude Code's own switches for exporting its spans (README "Traces")
    "CLAUDE_CODE_ENABLE_TELEMETRY": "1", "CLAUDE_CODE_ENHANCED_TELEMETRY_BETA": "1", "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    # Asking the CLI for prompts and tool content in its telemetry: its clean environment does not pass these on.
    "OTEL_LOG_USER_PROMPTS": "1", "OTEL_LOG_TOOL_DETAILS": "1", "OTEL_LOG_TOOL_CONTENT": "1",
}


def service_spans(received: list, service: str) -> list:
    return [span for _, name, span in received if name == service]


@pytest.mark.e2e
async def test_a_server_sends_each_turn_to_the_collector_and_the_clis_spans_join_it(local_model, tmp_path):
    collector = Collector()
    owner = await asyncio.to_thread(make_user)
    session = await asyncio.to_thread(make_session, owner)
    token = (await asyncio.to_thread(Token.objects.create, user=owner)).key
    server = ServerProcess(local_model_url=local_model.url, var_dir=tmp_path, extra_env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}",
        "OTEL_SERVICE_NAME": "copilot-test", "OTEL_BSP_SCHEDULE_DELAY": "100", **CLI_TELEMETRY})
    try:
        async with websockets.connect(f"{server.ws_url}/ws/sessions/{session.id}/",
                                      additional_headers={"Authorization": f"Token {token}"}) as client:
            await client.send(json.dumps({"type": "resume", "after_seq": 0}))
            await client.send(json.dumps(send_frame("Secret: the owl is Quokka7731.\n" + script(
                {"tools": [wait_tool(0.1), text_tool("owl {n}", {"n": "Zebra6612"})]}, {"text": "Traced, Narwhal5590."}))))
            frames = await receive_until(client, is_finish)
        turn_id = frames[0]["turn_id"]
        received = await asyncio.to_thread(collector.wait_for, lambda got: any(
            span.name == "copilot.turn" for _, _, span in got) and service_spans(got, "claude-code"))
    finally:
        server.stop()
        collector.shutdown()
    assert {path for path, _, _ in received} == {"/v1/traces"}
    [turn] = [span for span in service_spans(received, "copilot-test") if span.name == "copilot.turn"]
    attributes = {kv.key: kv.value for kv in turn.attributes}
    assert attributes["turn_id"].string_value == turn_id
    tool_calls = [span for span in service_spans(received, "copilot-test") if span.name == "copilot.tool_call"]
    assert len(tool_calls) == 2 and all(span.parent_span_id == turn.span_id for span in tool_calls)

    # The page's resume started the session's CLI before the turn (a warm client): the CLI's spans sit under the
    # span it started in, and the turn links to that span.
    [started] = [span for span in service_spans(received, "copilot-test") if span.name == "copilot.cli"]
    cli = service_spans(received, "claude-code")
    assert all(span.trace_id == started.trace_id for span in cli)
    assert any(span.parent_span_id == started.span_id for span in cli)
    assert [(link.trace_id, link.span_id) for link in turn.links] == [(started.trace_id, started.span_id)]
    assert attributes["warm_client"].bool_value is True
    for _, _, span in received:
        text = str(span)
        for secret in ("Quokka7731", "Zebra6612", "Narwhal5590"):  # words, which no id's bytes spell by chance
            assert secret not in text, (span.name, secret)

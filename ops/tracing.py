"""Traces (PROTOCOL §9): each turn a span `copilot.turn`, with a child span per tool call and per wait.

A CLI is started inside a span `copilot.cli`, whose W3C trace context (TRACEPARENT) the SDK passes to it: the
CLI's own spans, when it exports any, sit under that span for its whole life. A CLI started for a turn is started
inside the turn's span, so one trace holds both; a warm CLI serves many turns, and each turn it serves links to
its `copilot.cli` span (the link says `warm`). Attributes are ids, names,
statuses and token counts; never the text of a message, a tool's input or output, or an error.

With COPILOT["TRACES_ENDPOINT"] (the standard OTEL_EXPORTER_OTLP_ENDPOINT) set, spans go to it over OTLP/HTTP in
batches; without it no tracer provider is installed and the spans cost next to nothing.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from chat.engine.observers import TurnInfo, TurnObserver
from core.conf import copilot_setting

TRACER_NAME = "copilot"
REMEMBERED_CLIS = 4096
FAILED_TURN_STATUSES = {"failed", "interrupted"}
FAILED_TOOL_STATUSES = {"failed", "interrupted"}
TOKEN_ATTRIBUTES = {"input_tokens": "gen_ai.usage.input_tokens", "output_tokens": "gen_ai.usage.output_tokens",
                    "cache_read_input_tokens": "gen_ai.usage.cache_read_input_tokens",
                    "cache_creation_input_tokens": "gen_ai.usage.cache_creation_input_tokens"}


def configure_export() -> None:
    """Install the SDK's tracer provider, exporting over OTLP/HTTP (when TRACES_ENDPOINT is set).

    The exporter reads its endpoint, headers, timeout and certificates from the OTEL_EXPORTER_OTLP_* variables
    and the provider its sampler from OTEL_TRACES_SAMPLER: the SDK's documented configuration.
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": copilot_setting("SERVICE_NAME")}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


@dataclass
class TurnSpans:
    turn: Span
    children: dict[str, Span] = field(default_factory=dict)  # open tool calls and waits, by key


class TracingObserver(TurnObserver):
    """Opens and closes the spans of each turn as the engine reports its moments (chat.engine.observers)."""

    def __init__(self) -> None:
        self._turns: dict[str, TurnSpans] = {}  # by turn id: the turns this process runs
        # By session id, the span its newest CLI started in; the oldest are forgotten (their CLIs long closed).
        self._clis: collections.OrderedDict[str, trace.SpanContext] = collections.OrderedDict()

    @contextlib.contextmanager
    def cli_scope(self, *, session_id: str) -> Iterator[None]:
        with trace.get_tracer(TRACER_NAME).start_as_current_span(
                "copilot.cli", attributes={"session_id": session_id}, record_exception=False,
                set_status_on_exception=False) as span:
            self._clis[session_id] = span.get_span_context()
            self._clis.move_to_end(session_id)
            while len(self._clis) > REMEMBERED_CLIS:
                self._clis.popitem(last=False)
            yield

    def client_acquired(self, turn: TurnInfo, *, warm: bool) -> None:
        spans = self._turns.get(turn.turn_id)
        cli = self._clis.get(turn.session_id)
        if spans is None:
            return
        spans.turn.set_attribute("warm_client", warm)
        if cli is not None and cli.trace_id != spans.turn.get_span_context().trace_id:
            spans.turn.add_link(cli, {"warm": warm})

    def turn_scope(self, turn: TurnInfo) -> contextlib.AbstractContextManager:
        return self._turn_span(turn)

    @contextlib.contextmanager
    def _turn_span(self, turn: TurnInfo) -> Iterator[None]:
        attributes = {"session_id": turn.session_id, "turn_id": turn.turn_id, "gen_ai.request.model": turn.model}
        if turn.user_id is not None:
            attributes["user_id"] = turn.user_id
        # Exceptions are not recorded: their text may quote the conversation. The turn's status says how it ended.
        with trace.get_tracer(TRACER_NAME).start_as_current_span(
                "copilot.turn", attributes=attributes, record_exception=False,
                set_status_on_exception=False) as span:
            spans = self._turns[turn.turn_id] = TurnSpans(span)
            try:
                yield
            finally:
                del self._turns[turn.turn_id]
                for child in spans.children.values():  # nothing said they ended: they ended with the turn
                    child.set_attribute("status", "interrupted")
                    child.end()

    def _child(self, turn_id: str, key: str, name: str, attributes: dict[str, Any]) -> None:
        spans = self._turns.get(turn_id)
        if spans is None:
            return
        context = trace.set_span_in_context(spans.turn)
        spans.children[key] = trace.get_tracer(TRACER_NAME).start_span(name, context=context, attributes=attributes)

    def _end_child(self, turn_id: str, key: str, attributes: dict[str, Any], *, failed: bool) -> None:
        spans = self._turns.get(turn_id)
        child = spans.children.pop(key, None) if spans is not None else None
        if child is None:
            return
        child.set_attributes(attributes)
        if failed:
            child.set_status(Status(StatusCode.ERROR))
        child.end()

    def _event(self, turn_id: str, name: str, attributes: dict[str, Any]) -> None:
        spans = self._turns.get(turn_id)
        if spans is not None:
            spans.turn.add_event(name, attributes)

    def first_token(self, turn: TurnInfo, *, seconds: float) -> None:
        self._event(turn.turn_id, "first_token", {"seconds": seconds})

    def tool_call_started(self, turn: TurnInfo, *, tool_call_id: str, tool_name: str) -> None:
        self._child(turn.turn_id, f"tool:{tool_call_id}", "copilot.tool_call",
                    {"tool_call_id": tool_call_id, "tool": tool_name, "turn_id": turn.turn_id})

    def tool_call_ended(self, turn: TurnInfo, *, tool_call_id: str, tool_name: str, status: str,
                        seconds: float) -> None:
        self._end_child(turn.turn_id, f"tool:{tool_call_id}", {"status": status},
                        failed=status in FAILED_TOOL_STATUSES)

    def wait_started(self, turn: TurnInfo, *, kind: str, key: str) -> None:
        self._child(turn.turn_id, f"wait:{kind}:{key}", "copilot.wait", {"kind": kind, "key": key,
                                                                         "turn_id": turn.turn_id})

    def wait_ended(self, turn: TurnInfo, *, kind: str, key: str, seconds: float, outcome: str) -> None:
        self._end_child(turn.turn_id, f"wait:{kind}:{key}", {"outcome": outcome}, failed=False)

    def model_retry(self, turn: TurnInfo, *, attempt: int, status: int | None) -> None:
        self._event(turn.turn_id, "model_retry", {"attempt": attempt, **({"status": status} if status else {})})

    def policy_denial(self, *, session_id: str, turn_id: str, tool_name: str, kind: str) -> None:
        self._event(turn_id, "policy_denial", {"tool": tool_name, "kind": kind})

    def turn_ended(self, turn: TurnInfo, *, status: str, seconds: float, usage: dict[str, Any] | None) -> None:
        spans = self._turns.get(turn.turn_id)
        if spans is None:
            return
        spans.turn.set_attribute("status", str(status))
        for field_name, attribute in TOKEN_ATTRIBUTES.items():
            if usage and usage.get(field_name) is not None:
                spans.turn.set_attribute(attribute, int(usage[field_name]))
        if usage and usage.get("cost_usd") is not None:
            spans.turn.set_attribute("cost_usd", float(usage["cost_usd"]))
        if status in FAILED_TURN_STATUSES:
            spans.turn.set_status(Status(StatusCode.ERROR))

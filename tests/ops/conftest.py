"""Fixtures of the operations tests: spans in memory, metric values of this process, servers and turns to watch."""

from __future__ import annotations

import uuid

import pytest
from channels.db import database_sync_to_async
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from chat.engine.registry import begin_turn, running_turns
from chat.models import ToolCall, Turn
from tests.factories import EventWatcher, make_session, make_user

_exporter = InMemorySpanExporter()


@pytest.fixture
def spans():
    """The OpenTelemetry SDK's in-memory exporter, behind this process's tracer provider (installed once: the
    global provider cannot be replaced). Emptied before and after the test."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    _exporter.clear()
    yield _exporter
    _exporter.clear()


def copilot_samples() -> dict[tuple, float]:
    """Every copilot_* sample of this process's metrics, by (name, sorted labels)."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in REGISTRY.collect() if family.name.startswith("copilot_") for sample in family.samples}


class Samples:
    """This process's metric values (its own figures, as it writes them to the metrics folder) since the test
    began."""

    def __init__(self) -> None:
        self.before = copilot_samples()

    def grew(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return copilot_samples().get(key, 0.0) - self.before.get(key, 0.0)


@pytest.fixture
def samples() -> Samples:
    return Samples()


@database_sync_to_async
def new_session():
    return make_session(make_user())


@database_sync_to_async
def turn_rows(turn_id):
    turn = Turn.objects.select_related("assistant_message").get(pk=turn_id)
    return turn, list(ToolCall.objects.filter(turn=turn).order_by("part_index"))


async def run_turn(session, text: str, *, timeout: float = 60):
    """A real turn in this process (engine, SDK, CLI, local model) watched to its `finish`."""
    async with EventWatcher(session.id) as watcher:
        started = await begin_turn(session=session, text=text, client_message_id=uuid.uuid4())
        events = await watcher.until_finish(timeout=timeout)
    task = running_turns.task_for(str(session.id))
    if task is not None:
        await task
    turn, calls = await turn_rows(started.turn.id)
    return events, turn, calls

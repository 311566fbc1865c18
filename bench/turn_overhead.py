"""Benchmark: what our turn engine costs on top of the raw SDK loop, for one scripted turn.

The turn: 5 parallel `mcp__copilot__run_block` calls of block `wait` (0 seconds), then a step of
200 words of text, played by the local model (localmodel.server, started here on a loopback port).

  raw     ClaudeSDKClient with the engine's own options (chat.engine.options.session_options), query,
          iterate receive_response and discard every message.
  engine  chat.engine.registry.begin_turn: saves the turn, maps every message to chunks, appends
          each to the event log with its durable write on PostgreSQL; the turn task is awaited. No
          operations: the ops app's observers are unregistered and spans are dropped.
  engine+ops  the same with the operations on (ops/): metrics (multiprocess mode, as served), the log
          context, and traces through the OpenTelemetry SDK, batched and exported over OTLP/HTTP to a
          collector stand-in on a loopback port (a thread of this process that answers 200).

Both run in one asyncio loop, on the throw-away database `copilot_bench` (created next to
DATABASE_URL's database, default postgres://postgres@127.0.0.1:5432/test). After one warm-up of
each, the variants alternate (the first of each round rotates) and each run gets its own ChatSession.
It prints median wall time and CPU time (this process plus its reaped children, i.e. the CLI:
getrusage RUSAGE_SELF + RUSAGE_CHILDREN deltas) and the engine/raw ratios. PostgreSQL's own CPU is
in neither figure. The local model serves from a thread of this process, so its CPU is in all, as is the
collector stand-in's.

    .venv/bin/python -m bench.turn_overhead            (--runs N for N measured runs of each)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.common import median, setup_django_on_bench_database

TOOL_CALLS = 5
TEXT_WORDS = 200
WARMUP_RUNS = 1
MEASURED_RUNS = 5
TARGET_WALL_RATIO = 1.10
TARGET_CPU_RATIO = 1.20
TARGET_OPERATIONS_RATIO = 1.05  # engine+ops / engine, wall and CPU
VARIANTS = ("raw", "engine", "engine+ops")


def scripted_prompt() -> str:
    """The `#script` user message (as tests/factories.py `script` and `wait_tool` build it)."""
    wait = {"name": "mcp__copilot__run_block", "input": {"block": "wait", "input": {"seconds": 0}}}
    text = " ".join(f"word{index}" for index in range(TEXT_WORDS))
    return "#script " + json.dumps([{"tools": [wait] * TOOL_CALLS}, {"text": text}])


@dataclass
class Run:
    wall: float
    cpu: float
    detail: str
    connections: int
    statements: int


class DatabaseCounter:
    """Counts PostgreSQL connections opened and statements run, in whichever thread runs them."""

    def __init__(self) -> None:
        self.connections = self.statements = 0

    def install(self) -> None:
        from django.db.backends.signals import connection_created

        connection_created.connect(self._connected, weak=False)

    def _connected(self, sender, connection, **kwargs) -> None:
        self.connections += 1
        if self._count not in connection.execute_wrappers:
            connection.execute_wrappers.append(self._count)

    def _count(self, execute, sql, params, many, context):
        self.statements += 1
        return execute(sql, params, many, context)

    def snapshot(self) -> tuple[int, int]:
        return self.connections, self.statements


def cpu_seconds() -> float:
    """User + system CPU of this process and of its children that have ended and been reaped."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def measured(body, counter: DatabaseCounter) -> Run:
    (connections, statements), cpu_before, wall_before = counter.snapshot(), cpu_seconds(), time.perf_counter()
    detail = await body()
    wall, cpu = time.perf_counter() - wall_before, cpu_seconds() - cpu_before
    return Run(wall, cpu, detail, counter.connections - connections, counter.statements - statements)


class Operations:
    """Turns the ops app's instrumentation on and off between runs: its observers, and a sampler that records
    spans only while on (the SDK's tracer provider, once installed, stays for the process)."""

    def __init__(self) -> None:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler

        from chat.engine import observers

        self.collector = CollectorStandIn()
        self.on = False
        operations = self

        class Switch(Sampler):
            def should_sample(self, *args, **kwargs):
                return (ALWAYS_ON if operations.on else ALWAYS_OFF).should_sample(*args, **kwargs)

            def get_description(self) -> str:
                return "on while the benchmark measures operations"

        provider = TracerProvider(sampler=Switch())
        self.processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{self.collector.url}/v1/traces"))
        provider.add_span_processor(self.processor)
        trace.set_tracer_provider(provider)
        # The ops app registered these when Django was set up (ops.apps).
        self.observers = [observer for observer in observers._observers if type(observer).__module__.startswith("ops.")]
        self._registry = observers
        self.switch(False)

    def switch(self, on: bool) -> None:
        self.on = on
        for observer in self.observers:
            (self._registry.register if on else self._registry.unregister)(observer)

    def cost_per_turn(self, turns: int = 500) -> float:
        """CPU seconds the instrumentation costs one turn like the benchmark's (5 tool calls), its moments played
        straight through the observers, spans exported (flushed every 100 turns, so none is dropped)."""
        import time
        import uuid

        from chat.engine.observers import TurnInfo

        observers = self._registry
        usage = {"input_tokens": 1200, "output_tokens": 400, "cache_read_input_tokens": 0,
                 "cache_creation_input_tokens": 0, "cost_usd": 0.01}
        self.switch(True)
        try:
            started = time.process_time()
            for index in range(turns):
                turn = TurnInfo(session_id=str(uuid.uuid4()), turn_id=str(uuid.uuid4()), user_id=1, model="bench")
                with observers.turn_scope(turn):
                    observers.notify("turn_started", turn)
                    calls = [f"toolu_{index}_{call}" for call in range(TOOL_CALLS)]
                    for call in calls:
                        observers.notify("tool_call_started", turn, tool_call_id=call,
                                         tool_name="mcp__copilot__run_block")
                    for call in calls:
                        observers.notify("tool_call_ended", turn, tool_call_id=call,
                                         tool_name="mcp__copilot__run_block", status="completed", seconds=0.01)
                    observers.notify("first_token", turn, seconds=0.2)
                    observers.notify("turn_ended", turn, status="completed", seconds=0.7, usage=usage)
                if index % 100 == 99:
                    self.processor.force_flush()
            self.processor.force_flush()
            return (time.process_time() - started) / turns
        finally:
            self.switch(False)

    def close(self) -> int:
        self.processor.force_flush()
        self.collector.stop()
        return self.collector.requests


class CollectorStandIn:
    """Answers every OTLP/HTTP export with 200 (and counts them), as a collector would."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        stand_in = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stand_in.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def main(measured_runs: int = MEASURED_RUNS) -> None:
    from asgiref.sync import sync_to_async
    from claude_agent_sdk import ClaudeSDKClient, ResultMessage
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from chat.engine.binding import SessionBinding, TurnBinding
    from chat.engine.options import session_options, tool_gate
    from chat.engine.registry import begin_turn, running_turns
    from chat.events.factory import get_event_log
    from chat.models import ChatSession, ToolCall, ToolCallStatus, TranscriptEntry, Turn, TurnStatus
    from localmodel.server import LocalModelServer

    model = LocalModelServer()
    model_url = model.start()
    var = Path(tempfile.mkdtemp(prefix="copilot-bench-"))
    settings.COPILOT = {**settings.COPILOT, "ANTHROPIC_BASE_URL": model_url,
                        "ANTHROPIC_API_KEY": "local-model-placeholder-key",
                        "CLI_HOME_DIR": var / "claude-home", "WORKSPACES_DIR": var / "workspaces"}
    prompt = scripted_prompt()
    counter = DatabaseCounter()
    counter.install()
    operations = Operations()
    user = await sync_to_async(get_user_model().objects.create)(username=f"bench-{uuid.uuid4().hex[:8]}")

    async def new_session() -> ChatSession:
        return await sync_to_async(ChatSession.objects.create)(owner=user, title="turn overhead benchmark")

    async def raw_turn(session: ChatSession) -> str:
        messages, result = 0, None
        binding = SessionBinding.for_one_turn(str(session.id),
                                              TurnBinding(turn_id="raw", gate=tool_gate(session_id=str(session.id))))
        options = session_options(session_id=str(session.id), owner_id=user.pk, binding=binding)
        async with ClaudeSDKClient(options) as client:
            await client.query(prompt)
            async for message in client.receive_response():
                messages += 1
                if isinstance(message, ResultMessage):
                    result = message
        if result is None or result.is_error:
            raise RuntimeError(f"raw turn did not succeed: {result}")
        return f"{messages} SDK messages"

    async def engine_turn(session: ChatSession) -> str:
        await begin_turn(session=session, text=prompt, client_message_id=uuid.uuid4())
        await running_turns.task_for(str(session.id))
        events = await get_event_log().read_after(str(session.id), 0)  # None: older events no longer kept
        return f"{len(events) if events is not None else '?'} events in the log"

    def check_engine_turn(session_id: uuid.UUID) -> None:
        turn = Turn.objects.get(session_id=session_id)
        completed = ToolCall.objects.filter(turn=turn, status=ToolCallStatus.COMPLETED).count()
        if turn.status != TurnStatus.COMPLETED or completed != TOOL_CALLS:
            raise RuntimeError(f"engine turn ended {turn.status} ({turn.error}) with {completed} completed calls")

    async def one(variant: str) -> Run:
        session = await new_session()
        if variant == "raw":
            return await measured(lambda: raw_turn(session), counter)
        operations.switch(variant == "engine+ops")
        try:
            run = await measured(lambda: engine_turn(session), counter)
        finally:
            operations.switch(False)
        await sync_to_async(check_engine_turn)(session.id)
        return run

    runs: dict[str, list[Run]] = {variant: [] for variant in VARIANTS}
    exports, operations_cpu = 0, 0.0
    try:
        for _ in range(WARMUP_RUNS):
            for variant in VARIANTS:
                await one(variant)
        for round_index in range(measured_runs):
            shift = round_index % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                runs[variant].append(await one(variant))
        operations_cpu = operations.cost_per_turn()
    finally:
        exports = operations.close()
        await running_turns.shutdown()
        close_log = getattr(get_event_log(), "close", None)  # the Redis event log holds a client
        if close_log is not None:
            await close_log()
        await sync_to_async(user.delete)()  # cascades to sessions, turns, tool calls
        # The CLI transcripts mirrored by the session store are keyed by the workspace path under `var`.
        await sync_to_async(TranscriptEntry.objects.filter(project_key__contains=var.name).delete)()
        model.stop()
        shutil.rmtree(var, ignore_errors=True)

    print("bench.turn_overhead: one scripted turn, raw SDK loop vs the engine (begin_turn + persistence + event log)")
    print(f"  turn: {TOOL_CALLS} parallel run_block wait(0) calls, then {TEXT_WORDS} words of text; local model at "
          f"{model_url}; database {settings.DATABASES['default']['NAME']}; "
          f"event log {type(get_event_log()).__name__}, "
          f"channel layer {settings.CHANNEL_LAYERS['default']['BACKEND'].rsplit('.', 1)[-1]}")
    print(f"  {WARMUP_RUNS} warm-up run of each, then {measured_runs} of each alternating; CPU = this process + "
          f"reaped children (the CLI)")
    for variant, label in (("raw", "raw SDK loop"), ("engine", "engine"), ("engine+ops", "engine+ops")):
        walls = [run.wall * 1000 for run in runs[variant]]
        cpus = [run.cpu * 1000 for run in runs[variant]]
        last = runs[variant][-1]
        print(f"  {label:12}  wall median {median(walls):7.1f} ms  (runs {', '.join(f'{w:.0f}' for w in walls)})")
        print(f"  {'':12}  CPU  median {median(cpus):7.1f} ms  (runs {', '.join(f'{c:.0f}' for c in cpus)})")
        print(f"  {'':12}  per turn: {last.detail}, {last.statements} SQL statements on "
              f"{last.connections} new PostgreSQL connections")
    wall_ratio = median([r.wall for r in runs["engine"]]) / median([r.wall for r in runs["raw"]])
    cpu_ratio = median([r.cpu for r in runs["engine"]]) / median([r.cpu for r in runs["raw"]])
    for name, ratio, target in (("wall", wall_ratio, TARGET_WALL_RATIO), ("CPU", cpu_ratio, TARGET_CPU_RATIO)):
        verdict = "meets" if ratio <= target else "MISSES"
        print(f"  ratio engine/raw {name:4}: {ratio:.3f}x   (target <= {target:.2f}x: {verdict})")
    print(f"  operations: {exports} OTLP exports received by the collector stand-in; the instrumentation of one "
          f"such turn alone costs {operations_cpu * 1e6:.0f} µs of CPU "
          f"({operations_cpu / median([r.cpu for r in runs['engine']]):.2%} of the engine turn's)")
    for name, attribute in (("wall", "wall"), ("CPU", "cpu")):
        ratio = (median([getattr(r, attribute) for r in runs["engine+ops"]])
                 / median([getattr(r, attribute) for r in runs["engine"]]))
        verdict = "meets" if ratio <= TARGET_OPERATIONS_RATIO else "MISSES"
        print(f"  ratio engine+ops/engine {name:4}: {ratio:.3f}x   (target <= {TARGET_OPERATIONS_RATIO:.2f}x: "
              f"{verdict})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="One scripted turn: raw SDK loop vs the engine.")
    parser.add_argument("--runs", type=int, default=MEASURED_RUNS, help="measured runs of each variant (default 5)")
    runs = parser.parse_args().runs
    setup_django_on_bench_database()  # synchronous (migrate), so before the event loop starts
    asyncio.run(main(runs))

"""Benchmark: SQL statements and PostgreSQL time per tool input and per tool output.

Runs migrations into a throw-away database `copilot_bench` (created next to DATABASE_URL's database,
default postgres://postgres@127.0.0.1:5432/test), starts one turn with `do_start_turn`, then records
N tool calls with `do_record_tool_input` and ends them with `do_record_tool_output`. Every statement
Django executes is counted and timed with `connection.execute_wrapper` (the time is the client's view:
driver + round trip + PostgreSQL). As the baseline of the same run it times bare `SELECT 1` round
trips through the same wrapper. Finally it checks that a repeated output for an ended call is refused
(returns False) in one statement.

Django's wrapper cannot see what the driver sends on its own, such as the `SELECT 1` of a connection health check.
So the same calls are then made as the turn engine makes them, from asyncio through its wrappers, and counted on
the wire: libpq's protocol trace of the connection, one round trip per `ReadyForQuery` the server sends. Once
through channels' `database_sync_to_async` (the baseline: what the engine used before) and once through
`core.db.hot_path_database` (what it uses now); target 1 round trip per tool input and per output.

    .venv/bin/python -m bench.persistence
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass, field

from bench.common import median, percentile, setup_django_on_bench_database

TOOL_CALLS = 500
WARMUP_CALLS = 20
TOOL_NAME = "mcp__copilot__run_block"
TOOL_INPUT = {"block": "wait", "input": {"seconds": 0}}
TOOL_OUTPUT = {"seconds": 0}


@dataclass
class StatementLog:
    """Counts and times every statement executed while it is installed."""

    durations: list[float] = field(default_factory=list)
    sqls: list[str] = field(default_factory=list)

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.durations.append(time.perf_counter() - start)
            self.sqls.append(sql)

    def reset(self) -> None:
        self.durations.clear()
        self.sqls.clear()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def main() -> None:
    database_url = setup_django_on_bench_database()

    from django.contrib.auth import get_user_model
    from django.db import connection

    from chat.actions.turns import do_record_tool_input, do_record_tool_output, do_start_turn
    from chat.models import ChatSession

    user = get_user_model().objects.create(username=f"bench-{uuid.uuid4().hex[:8]}")
    try:
        session = ChatSession.objects.create(owner=user, title="persistence benchmark")
        turn = do_start_turn(session=session, text="bench", client_message_id=uuid.uuid4()).turn
        seq = iter(range(1, 1_000_000))

        def record_input(tool_use_id: str, part_index: int) -> bool:
            return do_record_tool_input(turn_id=turn.id, message_id=turn.assistant_message_id,
                                        tool_use_id=tool_use_id, name=TOOL_NAME, tool_input=TOOL_INPUT,
                                        part_index=part_index, seq=next(seq))

        def record_output(tool_use_id: str) -> bool:
            return do_record_tool_output(turn_id=turn.id, tool_use_id=tool_use_id, seq=next(seq), output=TOOL_OUTPUT)

        def select_one() -> None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()

        # Warm up the connection, the query compiler and PostgreSQL's plan caches; not measured.
        for index in range(WARMUP_CALLS):
            assert record_input(f"warmup_{index}", index) and record_output(f"warmup_{index}")
            select_one()

        log = StatementLog()
        input_times, output_times, select_times = [], [], []
        call_times: dict[str, list[float]] = {"input": [], "output": [], "select": []}
        input_statements = output_statements = 0
        call_ids = [f"toolu_{uuid.uuid4().hex[:24]}" for _ in range(TOOL_CALLS)]
        with connection.execute_wrapper(log):
            # Inputs and outputs alternate in batches of five, like a turn of parallel calls, with SELECT 1
            # round trips interleaved so the baseline sees the same conditions.
            for start in range(0, TOOL_CALLS, 5):
                batch = call_ids[start:start + 5]
                for offset, tool_use_id in enumerate(batch):
                    log.reset()
                    began = time.perf_counter()
                    assert record_input(tool_use_id, WARMUP_CALLS + start + offset)
                    call_times["input"].append(time.perf_counter() - began)
                    input_statements += len(log.durations)
                    input_times.extend(log.durations)
                for tool_use_id in batch:
                    log.reset()
                    began = time.perf_counter()
                    assert record_output(tool_use_id)
                    call_times["output"].append(time.perf_counter() - began)
                    output_statements += len(log.durations)
                    output_times.extend(log.durations)
                    log.reset()
                    began = time.perf_counter()
                    select_one()
                    call_times["select"].append(time.perf_counter() - began)
                    select_times.extend(log.durations)

            # A repeated output for an ended call must be refused, in one statement.
            log.reset()
            repeated = record_output(call_ids[0])
            repeat_statements, repeat_sql = len(log.durations), list(log.sqls)
    finally:
        user.delete()  # cascades to the session, messages, turn and tool calls

    select_mean = sum(select_times) / len(select_times)
    print("bench.persistence: statements and PostgreSQL time per tool input / output")
    print(f"  database {database_url}, PostgreSQL {connection.pg_version // 10000}; {TOOL_CALLS} tool calls "
          f"after {WARMUP_CALLS} warm-up calls; time = wall time of each execute as Django sees it")
    select_call_mean = sum(call_times["select"]) / len(call_times["select"])
    rows = [("tool input (INSERT)", input_statements, input_times, call_times["input"]),
            ("tool output (UPDATE)", output_statements, output_times, call_times["output"]),
            ("baseline SELECT 1", len(select_times), select_times, call_times["select"])]
    print("  per statement (execute wall time):")
    for label, statements, times, _ in rows:
        mean = sum(times) / len(times)
        print(f"    {label:22} {statements / TOOL_CALLS:4.2f} statements per call   mean {ms(mean)}   "
              f"median {ms(median(times))}   p95 {ms(percentile(times, 0.95))}   "
              f"ratio to SELECT 1: mean {mean / select_mean:.2f}x, p95 "
              f"{percentile(times, 0.95) / percentile(select_times, 0.95):.2f}x")
    print("  per whole call (the do_* function: ORM + statement):")
    for label, _, _, times in rows:
        mean = sum(times) / len(times)
        print(f"    {label:22} mean {ms(mean)}   p95 {ms(percentile(times, 0.95))}   "
              f"ratio to SELECT 1 call: mean {mean / select_call_mean:.2f}x")
    for label, statements in (("tool input", input_statements), ("tool output", output_statements)):
        verdict = "meets" if statements == TOOL_CALLS else "MISSES"
        print(f"  target 1 statement per {label}: {verdict} ({statements} statements for {TOOL_CALLS} calls)")
    verdict = "refused" if repeated is False and repeat_statements == 1 else "NOT refused as expected"
    print(f"  repeated output for an ended call: returned {repeated} in {repeat_statements} statement(s): "
          f"{verdict}")
    print(f"    {repeat_sql[0][:140]}..." if repeat_sql else "    (no statement)")
    wire = asyncio.run(round_trips_on_the_wire())
    print("  round trips on the wire (libpq trace), per tool input / output, from asyncio:")
    for label, (inputs, outputs) in wire.items():
        print(f"    {label:26} {inputs / TOOL_CALLS:4.2f} per input   {outputs / TOOL_CALLS:4.2f} per output")
    engine_inputs, engine_outputs = wire["hot_path_database (now)"]
    verdict = "meets" if engine_inputs <= TOOL_CALLS * 1.01 and engine_outputs <= TOOL_CALLS * 1.01 else "MISSES"
    print(f"  target 1 round trip per tool event (a health check at most once a second): {verdict}")
    ok = (input_statements == TOOL_CALLS and output_statements == TOOL_CALLS
          and repeated is False and repeat_statements == 1)
    if not ok:
        raise SystemExit("bench.persistence: a statement-count check failed (see above)")


async def round_trips_on_the_wire() -> dict[str, tuple[int, int]]:
    """Round trips PostgreSQL answers for TOOL_CALLS inputs and outputs, through each async wrapper."""
    from asgiref.sync import sync_to_async
    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model

    from chat.actions.turns import do_record_tool_input, do_record_tool_output, do_start_turn
    from chat.models import ChatSession
    from core.db import hot_path_database

    def start():
        user = get_user_model().objects.create(username=f"bench-{uuid.uuid4().hex[:8]}")
        session = ChatSession.objects.create(owner=user, title="persistence benchmark")
        return user, do_start_turn(session=session, text="bench", client_message_id=uuid.uuid4()).turn

    user, turn = await sync_to_async(start)()
    seq = iter(range(1, 1_000_000))
    results = {}
    try:
        for label, wrapper in (("database_sync_to_async", database_sync_to_async),
                               ("hot_path_database (now)", hot_path_database)):
            record_input, record_output = wrapper(do_record_tool_input), wrapper(do_record_tool_output)
            counts = []
            for kind in ("input", "output"):
                with tempfile.TemporaryFile(mode="w+") as trace:
                    await sync_to_async(start_trace)(trace.fileno())
                    for index in range(TOOL_CALLS):
                        tool_use_id = f"wire_{label[:4]}_{index}"
                        if kind == "input":
                            await record_input(turn_id=turn.id, message_id=turn.assistant_message_id,
                                               tool_use_id=tool_use_id, name=TOOL_NAME, tool_input=TOOL_INPUT,
                                               part_index=index, seq=next(seq))
                        else:
                            await record_output(turn_id=turn.id, tool_use_id=tool_use_id, seq=next(seq),
                                                output=TOOL_OUTPUT)
                    await sync_to_async(stop_trace)()
                    trace.seek(0)
                    counts.append(sum(1 for line in trace if "\tReadyForQuery" in line and line.startswith("B")))
            results[label] = (counts[0], counts[1])
    finally:
        await sync_to_async(user.delete)()
    return results


def start_trace(fileno: int) -> None:
    """libpq's protocol trace of this thread's connection (opened first if needed), into `fileno`."""
    from django.db import connection
    from psycopg import pq

    connection.ensure_connection()
    connection.connection.pgconn.trace(fileno)
    connection.connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)


def stop_trace() -> None:
    from django.db import connection

    if connection.connection is not None:
        connection.connection.pgconn.untrace()


if __name__ == "__main__":
    main()

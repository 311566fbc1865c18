"""Benchmark: agent runs through the background worker, on SQLite and on PostgreSQL.

The agent has 5 nodes of quick blocks (two `text`, two `calculator`, one `json_extract`; two branches joined),
so the figures are the machinery's: the queue, the worker, the executor and its writes. For each database:

  baseline  the same runs executed in this process, one after another, by `agents.executor.execute_run`
            (every write of a run, no queue, no other process): the cost of a run itself.
  burst     RUNS runs queued at once with `do_enqueue_run` (as the API and the copilot do), done by WORKERS
            `manage.py agents_worker` processes: runs/s from the first enqueue to the last run's end, and the
            queue-to-start latency of each run (`started_at - queued_at`), which here is mostly waiting in line.
  paced     RUNS runs queued one every PACED_INTERVAL_SECONDS (10 runs/s, below what one worker does), so a
            worker is usually idle when a run arrives: the queue-to-start latency of the mechanism itself (its
            poll interval, WORKER_POLL_SECONDS = 0.2 s, and its claim).

SQLite is a throw-away file; PostgreSQL is the throw-away database `copilot_bench` (bench/common.py). Each
database is measured in a child process of its own (Django is set up once per process).

    .venv/bin/python -m bench.agent_runs                 (--runs N, --workers N, --database sqlite|postgres)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import median, percentile

RUNS = 200
WORKERS = 1
WARMUP_RUNS = 5
PACED_INTERVAL_SECONDS = 0.1
TARGET_RUNS_PER_SECOND = 20.0
TARGET_PACED_P95_SECONDS = 0.5  # the worker polls an empty queue every WORKER_POLL_SECONDS (0.2 s by default)
GRAPH = {
    "nodes": [
        {"id": "greet", "block": "text", "input": {"template": "Hello {name}", "values": {"name": "Ada"}}},
        {"id": "sum", "block": "calculator", "input": {"expression": "20 + 22"}},
        {"id": "sentence", "block": "text", "input": {"template": "{greeting}, the answer is {n}."}},
        {"id": "check", "block": "calculator", "input": {"expression": "6 * 7"}},
        {"id": "pick", "block": "json_extract", "input": {"data": {"answers": [7, 42]}, "path": "answers[1]"}},
    ],
    "links": [
        {"from": "greet", "output": "text", "to": "sentence", "input": "values.greeting"},
        {"from": "sum", "output": "result", "to": "sentence", "input": "values.n"},
    ],
}


def setup_django(database: str, scratch: Path) -> str:
    """Point Django at the benchmark's database, migrate it; returns its URL."""
    if database == "postgres":
        from bench.common import setup_django_on_bench_database

        return setup_django_on_bench_database()
    url = f"sqlite:///{scratch / 'bench.sqlite3'}"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_site.settings")
    os.environ.setdefault("COPILOT_LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_DEBUG", "0")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return url


def wait_until_finished(run_ids: list, *, timeout: float = 300) -> None:
    """Poll until every run has ended: the worker is another process, and nothing tells this one."""
    from agents.models import AgentRun, RunStatus

    deadline = time.monotonic() + timeout
    while AgentRun.objects.filter(pk__in=run_ids, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench.agent_runs: runs still unfinished after {timeout}s")
        time.sleep(0.01)


def latencies(run_ids: list) -> list[float]:
    from agents.models import AgentRun, RunStatus

    runs = list(AgentRun.objects.filter(pk__in=run_ids))
    failed = [run for run in runs if run.status != RunStatus.COMPLETED]
    if failed:
        raise SystemExit(f"bench.agent_runs: {len(failed)} runs did not complete: {failed[0].error}")
    return [(run.started_at - run.queued_at).total_seconds() for run in runs]


def measure(database: str, runs: int, workers: int) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="agent-runs-bench-"))
    url = setup_django(database, scratch)

    from asgiref.sync import async_to_sync
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django_tasks_db.models import DBTaskResult

    from agents.actions import do_create_agent, do_enqueue_run
    from agents.executor import execute_run
    from agents.supervisor import WorkerProcess

    user = get_user_model().objects.create(username=f"bench-{uuid.uuid4().hex[:8]}")
    agent = do_create_agent(owner_id=user.pk, name="five nodes", graph=GRAPH)
    task_ids: list[str] = []
    started_workers: list[WorkerProcess] = []
    try:
        # Baseline: the executor in this process, no queue.
        baseline_ids = []
        for _ in range(WARMUP_RUNS):
            run = do_enqueue_run(agent=agent)
            task_ids.append(run.task_id)
            async_to_sync(execute_run)(run.id)
        began = time.perf_counter()
        for _ in range(runs):
            run = do_enqueue_run(agent=agent)
            task_ids.append(run.task_id)
            async_to_sync(execute_run)(run.id)
            baseline_ids.append(run.id)
        baseline_seconds = time.perf_counter() - began
        DBTaskResult.objects.filter(pk__in=task_ids).delete()  # done here: no worker must see them

        env = {**os.environ, "DATABASE_URL": url, "COPILOT_LOG_LEVEL": "WARNING", "DJANGO_DEBUG": "0"}
        log = open(scratch / "workers.log", "w")
        started_workers.extend(WorkerProcess(env=env, log=log) for _ in range(workers))
        warmup = [do_enqueue_run(agent=agent) for _ in range(WARMUP_RUNS * workers)]
        task_ids += [run.task_id for run in warmup]
        wait_until_finished([run.id for run in warmup], timeout=120)  # the workers are up and warm

        # Burst: all queued at once.
        began = time.perf_counter()
        burst = [do_enqueue_run(agent=agent) for _ in range(runs)]
        enqueued_seconds = time.perf_counter() - began
        task_ids += [run.task_id for run in burst]
        wait_until_finished([run.id for run in burst])
        burst_seconds = time.perf_counter() - began
        burst_latency = latencies([run.id for run in burst])

        # Paced: one at a time, slower than the worker can go.
        interval = PACED_INTERVAL_SECONDS
        paced = []
        next_at = time.perf_counter()
        for _ in range(runs):
            time.sleep(max(0.0, next_at - time.perf_counter()))
            paced.append(do_enqueue_run(agent=agent))
            next_at += interval
        task_ids += [run.task_id for run in paced]
        wait_until_finished([run.id for run in paced])
        paced_latency = latencies([run.id for run in paced])
    finally:
        for worker in started_workers:
            worker.stop()
        user.delete()  # cascades to the agent, its runs and their nodes
        DBTaskResult.objects.filter(pk__in=task_ids).delete()
        shutil.rmtree(scratch, ignore_errors=True)
    vendor = connection.vendor
    version = connection.pg_version // 10000 if vendor == "postgresql" else connection.Database.sqlite_version
    return {"database": database, "engine": f"{vendor} {version}", "runs": runs, "workers": workers,
            "baseline_runs_per_second": runs / baseline_seconds,
            "burst_runs_per_second": runs / burst_seconds, "enqueue_ms": 1000 * enqueued_seconds / runs,
            "burst_latency": [median(burst_latency), percentile(burst_latency, 0.95), max(burst_latency)],
            "paced_interval_ms": 1000 * interval,
            "paced_latency": [median(paced_latency), percentile(paced_latency, 0.95), max(paced_latency)]}


def report(result: dict) -> bool:
    ratio = result["burst_runs_per_second"] / result["baseline_runs_per_second"]
    burst, paced = result["burst_latency"], result["paced_latency"]
    print(f"  {result['database']} ({result['engine']}), {result['runs']} runs of 5 nodes, "
          f"{result['workers']} worker process(es):")
    print(f"    baseline, in-process executor   {result['baseline_runs_per_second']:7.1f} runs/s")
    print(f"    burst, through the worker       {result['burst_runs_per_second']:7.1f} runs/s   "
          f"ratio to baseline {ratio:.2f}x   (enqueue {result['enqueue_ms']:.1f} ms per run)")
    print(f"      queue-to-start  median {burst[0] * 1000:7.0f} ms   p95 {burst[1] * 1000:7.0f} ms   "
          f"max {burst[2] * 1000:7.0f} ms   (waiting in line behind the burst)")
    print(f"    paced, one run every {result['paced_interval_ms']:.0f} ms")
    print(f"      queue-to-start  median {paced[0] * 1000:7.0f} ms   p95 {paced[1] * 1000:7.0f} ms   "
          f"max {paced[2] * 1000:7.0f} ms")
    throughput_ok = result["burst_runs_per_second"] >= TARGET_RUNS_PER_SECOND
    latency_ok = paced[1] <= TARGET_PACED_P95_SECONDS
    print(f"    target >= {TARGET_RUNS_PER_SECOND:g} runs/s: {'meets' if throughput_ok else 'MISSES'}; "
          f"target paced p95 queue-to-start <= {TARGET_PACED_P95_SECONDS * 1000:.0f} ms: "
          f"{'meets' if latency_ok else 'MISSES'}")
    return throughput_ok and latency_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--database", choices=["sqlite", "postgres"], help="measure one database, print JSON")
    args = parser.parse_args()
    if args.database:
        print(json.dumps(measure(args.database, args.runs, args.workers)))
        return
    print("bench.agent_runs: agent runs through the background worker")
    for database in ("sqlite", "postgres"):
        child = subprocess.run([sys.executable, "-m", "bench.agent_runs", "--database", database, "--runs",
                                str(args.runs), "--workers", str(args.workers)], capture_output=True, text=True)
        if child.returncode != 0:
            last_line = (child.stderr or child.stdout).strip().splitlines()[-1:] or ["(no output)"]
            print(f"  {database}: not measured: {last_line[0][:300]}")
            continue
        report(json.loads(child.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()

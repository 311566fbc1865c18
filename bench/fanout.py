"""Benchmark: one turn watched by 1, 10 and 100 websockets over two daphne processes sharing Redis.

Two daphne processes, A and B, with REDIS_URL set (RedisEventLog + RedisPubSubChannelLayer) on the same
throw-away database `copilot_bench` (bench/common.py); the local model runs in a process of its own. For
each watcher count W, a run makes a new session and opens W websockets (token header): socket i goes to
A when i is even, to B when odd, and socket 0 (on A) is the one that sends. Every socket sends
`resume {after_seq: 0}` and a `ping`, and the run waits for every pong (so all are live), then socket 0
sends the scripted turn: 3 parallel `mcp__copilot__run_block` `wait` 0 s calls, then 300 words of text
(streamed by the model a word at a time; the server merges deltas within DELTA_WINDOW_MS, so ~20 events). Each socket reads until `finish`, timing every event frame on arrival.

  turn        time from sending the message to `finish` on the sending socket (the turn's own speed)
  delivery    per event, the time from the first socket receiving it to each other socket receiving it
              (the frames carry no server time); p50 / p99 over every (event, other socket) pair
  events/s    all event frames received by all sockets / (last arrival - first arrival)
  tail        last socket's `finish` minus the sending socket's `finish`
  CPU         seconds used meanwhile (from /proc) by this client, each server (with its turns' CLI once
              reaped), the local model, Redis and PostgreSQL, and the rest of the machine

Every socket is checked to get every seq from 1 to the turn's `finish` once, in order, and the turn to
complete with its 3 tool outputs. Baselines of the same run: the turn with 1 watcher (the target: the turn
with 100 watchers is at most 10 % slower, i.e. speed 100/1 >= 0.90) and a ping/pong round trip on an idle
socket of each server. The rounds alternate the order of W (1,10,100 then 100,10,1 …) after one warm-up
run of 10 watchers; turn figures are medians of the runs, delivery figures pool every run.

The servers run bench/server_settings.py: the project's settings with the websocket rate limits lifted
(100 sockets of one user resume within a second, far past the resumes allowed per user); they are still
checked on every frame.

All sockets are read by one asyncio loop in this process, so a delivery figure includes this client's own
time to get to a frame (it grows with W on its own); the servers, the CLI, PostgreSQL, Redis and this
client share the machine's cores.

    .venv/bin/python -m bench.fanout            (--runs N rounds, default 8; --watchers 1,10,100)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time
from dataclasses import dataclass, field

from bench.common import median, percentile, setup_django_on_bench_database
from bench.live import (
    DaphneServer,
    LocalModelProcess,
    clean_up,
    create_session,
    create_user_with_token,
    delete_bench_rows,
    delete_redis_keys,
    event_seq,
    frame_text,
    is_finish,
    make_var_dir,
    ms,
    open_socket,
    raise_open_file_limit,
    remove_var_dir,
    script_text,
    send_frame,
    take_redis_url,
    wait_tool,
)

TEXT_WORDS = 300
TOOL_CALLS = 3
WATCHERS = (1, 10, 100)
ROUNDS = 8  # turn times vary by ±20 % run to run on two cores: medians of fewer runs are noise
WARMUP_WATCHERS = 10
CONNECT_CONCURRENCY = 25
PINGS = 200
TURN_TIMEOUT = 300
TARGET_SPEED_RATIO = 0.90  # the turn at 100 watchers at most 10 % slower than with 1
PONG = '{"type": "pong"}'
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LOAD_AT_START: list[float] = []


def prompt() -> str:
    text = " ".join(f"word{index}" for index in range(TEXT_WORDS))
    return script_text({"tools": [wait_tool(0)] * TOOL_CALLS}, {"text": text})


@dataclass
class Watcher:
    index: int
    server: DaphneServer
    socket: object
    keep_frames: bool = False
    arrivals: list[tuple[int, float]] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)
    finished: float | None = None

    async def ready(self) -> None:
        """Resume from 0 and wait for the pong that proves the resume was handled: the socket is live."""
        await self.socket.send(frame_text({"type": "resume", "after_seq": 0}))
        await self.socket.send(frame_text({"type": "ping"}))
        raw = await self.socket.recv()
        if raw != PONG:
            raise RuntimeError(f"socket {self.index}: expected a pong after the resume, got {raw[:300]}")

    async def watch(self) -> None:
        socket, arrivals = self.socket, self.arrivals
        while True:
            raw = await socket.recv()
            now = time.perf_counter()
            seq = event_seq(raw)
            if seq is None:
                if '"type": "ack"' in raw:
                    continue
                raise RuntimeError(f"socket {self.index} ({self.server.name}): unexpected frame {raw[:300]}")
            arrivals.append((seq, now))
            if self.keep_frames:
                self.frames.append(raw)
            if is_finish(raw):
                self.finished = now
                return


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and of its reaped children (a server's are its turns' CLIs)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


SHARED_SERVICES = {"redis-server": "Redis", "postgres": "PostgreSQL"}


def service_cpu() -> dict[tuple[str, int], float]:
    """CPU seconds of every Redis and PostgreSQL process now running, by (service, pid)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                head, tail = stat.read().rsplit(")", 1)
        except OSError:
            continue  # ended meanwhile
        service = SHARED_SERVICES.get(head.split("(", 1)[1])
        if service is not None:
            found[(service, int(entry))] = sum(int(value) for value in tail.split()[11:13]) / CLOCK_TICKS
    return found


class CpuMeter:
    """CPU used during a run by this process (the client), each server, the local model, Redis and PostgreSQL
    (their processes alive at both ends of the run), and the machine's busy share."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def __enter__(self) -> "CpuMeter":
        self.start, self.start_services = self._read(), service_cpu()
        return self

    def __exit__(self, *exc) -> None:
        end, end_services = self._read(), service_cpu()
        self.used = {name: end[name] - self.start[name] for name in end}
        for service in SHARED_SERVICES.values():
            self.used[service] = sum(end_services[key] - self.start_services[key] for key in end_services
                                     if key[0] == service and key in self.start_services)

    def _read(self) -> dict[str, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        values = {"client": own.ru_utime + own.ru_stime}
        values.update({name: process_cpu(pid) for name, pid in self.pids.items()})
        values["machine busy"], values["machine total"] = machine_cpu()
        return values

    def busy_share(self) -> float:
        return self.used["machine busy"] / self.used["machine total"] if self.used["machine total"] else 0.0


@dataclass
class Run:
    watchers: int
    turn: float
    events: int
    delivered: int
    events_per_second: float
    tail: float
    latencies: list[float]  # every (event, socket other than the first to get it)
    latencies_by_server: dict[str, list[float]]
    cpu: dict[str, float]  # seconds used during the run (from the send to the last finish)
    busy: float  # share of the machine's CPU time that was busy meanwhile


async def connect_watchers(servers, session_id: str, token: str, count: int) -> list[Watcher]:
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(index: int) -> Watcher:
        server = servers[index % len(servers)]
        async with limit:
            socket = await open_socket(server.session_url(session_id), token)
            watcher = Watcher(index, server, socket, keep_frames=index == 0)
            await watcher.ready()
            return watcher

    return list(await asyncio.gather(*(connect(index) for index in range(count))))


def check_turn(watchers: list[Watcher]) -> int:
    """Every socket got seqs 1..finish once and in order; the turn completed with its tool outputs."""
    sender = watchers[0]
    last = sender.arrivals[-1][0]
    expected = list(range(1, last + 1))
    for watcher in watchers:
        seqs = [seq for seq, _ in watcher.arrivals]
        if seqs != expected:
            raise RuntimeError(f"socket {watcher.index} ({watcher.server.name}) got {len(seqs)} events, "
                               f"not seqs 1..{last} in order")
    chunks = [json.loads(raw)["chunk"] for raw in sender.frames]
    types = [chunk["type"] for chunk in chunks]
    statuses = [chunk["data"]["status"] for chunk in chunks if chunk["type"] == "data-turn"]
    if statuses != ["completed"] or types.count("tool-output-available") != TOOL_CALLS:
        raise RuntimeError(f"the turn did not complete with {TOOL_CALLS} tool outputs: {statuses}, "
                           f"{types.count('tool-output-available')} outputs")
    return last


async def one_run(servers, user, token: str, watchers_count: int, text: str, sessions: list[str],
                  pids: dict[str, int]) -> Run:
    from asgiref.sync import sync_to_async

    session = await sync_to_async(create_session)(user, f"fanout benchmark: {watchers_count} watchers")
    session_id = str(session.id)
    sessions.append(session_id)
    watchers = await connect_watchers(servers, session_id, token, watchers_count)
    try:
        tasks = [asyncio.create_task(watcher.watch()) for watcher in watchers]
        with CpuMeter(pids) as cpu:
            sent = time.perf_counter()
            await watchers[0].socket.send(frame_text(send_frame(text)))
            try:
                await asyncio.wait_for(asyncio.gather(*tasks), TURN_TIMEOUT)
            except BaseException:
                for task in tasks:
                    task.cancel()
                raise
    finally:
        await asyncio.gather(*(watcher.socket.close() for watcher in watchers), return_exceptions=True)
    for server in servers:
        server.check_alive()
    events = check_turn(watchers)

    arrivals_by_seq: dict[int, list[tuple[float, str]]] = {}
    for watcher in watchers:
        for seq, at in watcher.arrivals:
            arrivals_by_seq.setdefault(seq, []).append((at, watcher.server.name))
    latencies: list[float] = []
    by_server: dict[str, list[float]] = {server.name: [] for server in servers}
    for arrivals in arrivals_by_seq.values():
        arrivals.sort()
        first = arrivals[0][0]
        for at, server_name in arrivals[1:]:
            latencies.append(at - first)
            by_server[server_name].append(at - first)
    all_times = [at for arrivals in arrivals_by_seq.values() for at, _ in arrivals]
    delivered = len(all_times)
    window = max(all_times) - min(all_times)
    return Run(watchers=watchers_count, turn=watchers[0].finished - sent, events=events, delivered=delivered,
               events_per_second=delivered / window if window > 0 else float("nan"),
               tail=max(w.finished for w in watchers) - watchers[0].finished,
               latencies=latencies, latencies_by_server=by_server, cpu=cpu.used, busy=cpu.busy_share())


async def ping_round_trips(server: DaphneServer, session_id: str, token: str, count: int) -> list[float]:
    socket = await open_socket(server.session_url(session_id), token)
    try:
        times = []
        for index in range(20 + count):
            started = time.perf_counter()
            await socket.send(frame_text({"type": "ping"}))
            if await socket.recv() != PONG:
                raise RuntimeError(f"{server.name}: expected a pong")
            if index >= 20:
                times.append(time.perf_counter() - started)
        return times
    finally:
        await socket.close()


def report(redis_url: str, rounds: int, watcher_counts, runs: dict[int, list[Run]], pings: dict[str, list[float]],
           server_names: list[str]) -> None:
    first_run = next(iter(runs.values()))[0]
    print()
    print(f"bench.fanout: one scripted turn ({TOOL_CALLS} parallel run_block wait(0) calls, then {TEXT_WORDS} words; "
          f"{first_run.events} events) watched by {', '.join(map(str, watcher_counts))} websockets")
    print(f"  two daphne processes, {server_names[0]} (runs the turn; the sending socket and the other even ones) and "
          f"{server_names[1]} (the odd sockets), sharing {redis_url} (RedisEventLog, RedisPubSubChannelLayer) and "
          f"copilot_bench; {rounds} runs per count after 1 warm-up run, order alternating")
    print(f"  load average when it started: {' '.join(f'{v:.2f}' for v in LOAD_AT_START)} ({os.cpu_count()} CPUs)")
    for name in server_names:
        print(f"  baseline ping/pong on an idle socket, server {name}: p50 {ms(median(pings[name])):.3f} ms  "
              f"p99 {ms(percentile(pings[name], 0.99)):.3f} ms  ({len(pings[name])} round trips)")
    base_ping = median([t for name in server_names for t in pings[name]])
    print()
    print(f"  {'watchers':>8} | {'turn median':>11} {'turn runs (ms)':<34} | {'delivery p50':>12} {'p99':>8} "
          f"{'max':>8} | {'p50/ping':>8} | {'events/s delivered':>18} | {'tail median':>11}")
    for count in watcher_counts:
        group = runs[count]
        turns = [run.turn for run in group]
        latencies = [lat for run in group for lat in run.latencies]
        rates = median([run.events_per_second for run in group])
        tail = median([run.tail for run in group])
        if latencies:
            delivery = (f"{ms(median(latencies)):9.2f} ms {ms(percentile(latencies, 0.99)):8.2f} "
                        f"{ms(max(latencies)):8.2f} | {median(latencies) / base_ping:7.1f}x")
        else:
            delivery = f"{'- (one socket)':>12} {'-':>8} {'-':>8} | {'-':>8}"
        print(f"  {count:>8} | {ms(median(turns)):8.0f} ms {', '.join(f'{ms(t):.0f}' for t in turns):<34} | "
              f"{delivery} | {rates:18,.0f} | {ms(tail):8.2f} ms")
    print()
    print("  delivery by the receiving socket's server (p50 / p99 ms, pooled runs):")
    for count in watcher_counts:
        parts = []
        for name in server_names:
            values = [lat for run in runs[count] for lat in run.latencies_by_server.get(name, [])]
            if values:
                parts.append(f"{name} {ms(median(values)):.2f} / {ms(percentile(values, 0.99)):.2f}")
        if parts:
            print(f"  {count:>8} watchers: " + ",  ".join(parts))
    print()
    print(f"  CPU seconds used during a turn (medians; a server's include its turns' CLI once reaped), "
          f"machine: {os.cpu_count()} CPUs:")
    names = [name for name in first_run.cpu if not name.startswith("machine")]
    print(f"  {'watchers':>8} | " + " ".join(f"{name:>11}" for name in names) + f" | {'rest':>6} | {'machine busy':>12}")
    for count in watcher_counts:
        group = runs[count]
        cells = " ".join(f"{median([run.cpu[name] for run in group]):11.2f}" for name in names)
        rest = median([run.cpu["machine busy"] - sum(run.cpu[name] for name in names) for run in group])
        print(f"  {count:>8} | {cells} | {rest:6.2f} | {100 * median([run.busy for run in group]):11.0f}%")
    print("  (rest: CLIs not yet reaped and anything else running on the machine)")
    low_group = runs[min(watcher_counts)]
    for count in watcher_counts:
        if count == min(watcher_counts):
            continue
        extra_frames = median([run.delivered for run in runs[count]]) - median([run.delivered for run in low_group])
        extra_cpu = {name: median([run.cpu[name] for run in runs[count]]) - median([run.cpu[name] for run in low_group])
                     for name in names if name.startswith("server")}
        if extra_frames > 0:
            print(f"  {count:>8} watchers: server CPU per extra frame delivered "
                  f"{1e6 * sum(extra_cpu.values()) / extra_frames:.0f} us (servers together, vs "
                  f"{min(watcher_counts)} watcher)")
    low, high = min(watcher_counts), max(watcher_counts)
    if low != high:
        base = median([run.turn for run in runs[low]])
        print()
        for count in watcher_counts:
            if count == low:
                continue
            turn = median([run.turn for run in runs[count]])
            speed = base / turn
            verdict = ""
            if count == high:
                verdict = f"   (target >= {TARGET_SPEED_RATIO:.2f}: {'meets' if speed >= TARGET_SPEED_RATIO else 'MISSES'})"
            print(f"  turn speed {count} / {low} watchers: {speed:.3f}  (duration ratio {turn / base:.3f}x){verdict}")


async def main(redis_url: str, watcher_counts: tuple[int, ...], rounds: int) -> None:
    from asgiref.sync import sync_to_async

    LOAD_AT_START[:] = os.getloadavg()
    raise_open_file_limit(max(4096, 8 * max(watcher_counts) + 1024))
    model = LocalModelProcess()
    var = make_var_dir()
    user, token = await sync_to_async(create_user_with_token)()
    servers: list[DaphneServer] = []
    sessions: list[str] = []
    runs: dict[int, list[Run]] = {count: [] for count in watcher_counts}
    pings: dict[str, list[float]] = {}
    text = prompt()
    try:
        for name in ("A", "B"):
            servers.append(DaphneServer(name=name, local_model_url=model.url, var_dir=var,
                                        workspaces_dir=var / "workspaces", redis_url=redis_url))
        pids = {f"server {server.name}": server.process.pid for server in servers}
        pids["local model"] = model.process.pid
        await one_run(servers, user, token, WARMUP_WATCHERS, text, sessions, pids)
        for server in servers:
            pings[server.name] = await ping_round_trips(server, sessions[0], token, PINGS)
        for round_index in range(rounds):
            order = watcher_counts if round_index % 2 == 0 else tuple(reversed(watcher_counts))
            for count in order:
                run = await one_run(servers, user, token, count, text, sessions, pids)
                runs[count].append(run)
                print(f"  round {round_index + 1}/{rounds}: {count:>3} watchers, turn {ms(run.turn):.0f} ms, "
                      f"{run.delivered} frames delivered", flush=True)
    finally:
        await sync_to_async(clean_up)(*(server.stop for server in servers), model.stop,
                                      lambda: delete_bench_rows(user, var),
                                      lambda: delete_redis_keys(redis_url, sessions),
                                      lambda: remove_var_dir(var))
    report(redis_url, rounds, watcher_counts, runs, pings, [server.name for server in servers])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="One turn watched by many websockets over two daphne processes.")
    parser.add_argument("--runs", type=int, default=ROUNDS, help=f"runs per watcher count (default {ROUNDS})")
    parser.add_argument("--watchers", default=",".join(map(str, WATCHERS)), help="watcher counts (default 1,10,100)")
    arguments = parser.parse_args()
    redis_url = take_redis_url()  # only the servers use Redis; this process is a client
    setup_django_on_bench_database()
    asyncio.run(main(redis_url, tuple(int(count) for count in arguments.watchers.split(",")), arguments.runs))

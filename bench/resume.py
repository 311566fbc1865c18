"""Benchmark: reconnecting to a session with a long event log, to the first replayed event and to being live.

Two daphne processes on the throw-away database `copilot_bench` (bench/common.py):

  memory  REDIS_URL empty: the InMemoryEventLog and the in-memory channel layer of that one process.
          Its logs are filled by real scripted turns through the websocket (the local model streams one
          `text-delta` per word of `#script [{"text": "w w w …"}]`), sized so each log holds exactly N events.
  redis   REDIS_URL set: the RedisEventLog. Its logs are filled from this process with
          chat.events.redis_log.RedisEventLog (same Redis, same key prefix) appending N `data-bench` chunks.

Both servers run bench/server_settings.py: the project's settings with the websocket rate limits lifted
(50 reconnects in a row are far past the resumes allowed per user); the limits are still checked.

For each log of N = 1,000 and 10,000 events, it reconnects R times (default 50, after 3 warm-ups), one at a
time: open a websocket (token header), send `{"type":"resume","after_seq":0}` and right after it
`{"type":"ping"}`, read until the `pong`, close. A consumer handles one frame at a time, so the pong comes
after the whole replay: it proves the socket is serving live frames again. Per reconnect, from the start
of the reconnect (TCP connect, handshake, token check):

  first   the first replayed event arrives
  last    the last replayed event arrives (every one of the N is checked to arrive, in order, no snapshot)
  live    the pong arrives

The baseline, measured in the same run on each server: a plain ping/pong round trip on an idle open socket
(200 of them). A reconnect that replays nothing (`after_seq` = the last seq) is shown too.

    .venv/bin/python -m bench.resume                 (--reconnects R, --sizes 1000,10000)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass

from bench.common import median, percentile, setup_django_on_bench_database
from bench.live import (
    EVENT_PREFIX,
    DaphneServer,
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
    redis_prefix,
    remove_var_dir,
    script_text,
    send_frame,
    take_redis_url,
)

SIZES = (1_000, 10_000)
RECONNECTS = 50
WARMUP_RECONNECTS = 3
PINGS = 200
WARMUP_PINGS = 20
REDIS_BATCH = 500
CALIBRATION_WORDS = 20
# Pads a `data-bench` frame to about the size of the memory log's `text-delta` frames (~146 bytes).
REDIS_EVENT_TEXT = " ".join(["w"] * 16)
PONG = '{"type": "pong"}'
LOAD_AT_START: list[float] = []


@dataclass
class Reconnect:
    handshake: float  # seconds from the start of the reconnect
    first: float | None
    last: float | None
    live: float
    events: int
    event_bytes: int


async def reconnect(server: DaphneServer, session_id: str, token: str, *, after_seq: int, expected: int) -> Reconnect:
    started = time.perf_counter()
    socket = await open_socket(server.session_url(session_id), token)
    try:
        opened = time.perf_counter()
        await socket.send(frame_text({"type": "resume", "after_seq": after_seq}))
        await socket.send(frame_text({"type": "ping"}))
        first = last = None
        count = nbytes = 0
        first_raw = last_raw = ""
        while True:
            raw = await socket.recv()
            now = time.perf_counter()
            if raw.startswith(EVENT_PREFIX):
                if first is None:
                    first, first_raw = now, raw
                last, last_raw = now, raw
                count += 1
                nbytes += len(raw)
            elif raw == PONG:
                live = now
                break
            else:
                raise RuntimeError(f"{server.name}: unexpected frame during the replay: {raw[:300]}")
    finally:
        await socket.close()
    if count != expected or (expected and (event_seq(first_raw) != after_seq + 1
                                           or event_seq(last_raw) != after_seq + expected)):
        raise RuntimeError(f"{server.name}: replayed {count} events (seqs {event_seq(first_raw)}.."
                           f"{event_seq(last_raw)}), expected {expected} after seq {after_seq}")
    return Reconnect(opened - started, first and first - started, last and last - started, live - started,
                     count, nbytes)


async def ping_round_trips(server: DaphneServer, session_id: str, token: str, count: int) -> list[float]:
    socket = await open_socket(server.session_url(session_id), token)
    try:
        times = []
        for index in range(WARMUP_PINGS + count):
            started = time.perf_counter()
            await socket.send(frame_text({"type": "ping"}))
            raw = await socket.recv()
            if raw != PONG:
                raise RuntimeError(f"{server.name}: expected a pong, got {raw[:300]}")
            if index >= WARMUP_PINGS:
                times.append(time.perf_counter() - started)
        return times
    finally:
        await socket.close()


async def run_turn(server: DaphneServer, session_id: str, token: str, text: str) -> list[str]:
    """Send one message through a websocket and return the raw event frames of its turn, up to `finish`."""
    socket = await open_socket(server.session_url(session_id), token)
    try:
        await socket.send(frame_text({"type": "resume", "after_seq": 0}))
        await socket.send(frame_text(send_frame(text)))
        events = []
        async with asyncio.timeout(600):
            while True:
                raw = await socket.recv()
                if raw.startswith(EVENT_PREFIX):
                    events.append(raw)
                    if is_finish(raw):
                        break
                elif '"type": "ack"' not in raw:
                    raise RuntimeError(f"{server.name}: unexpected frame during a turn: {raw[:300]}")
        if '"status": "completed"' not in events[-2]:
            raise RuntimeError(f"{server.name}: the filling turn did not complete: {events[-2][:300]}")
        return events
    finally:
        await socket.close()


def words_text(words: int) -> str:
    return script_text({"text": " ".join(["w"] * words)})


async def fill_memory_logs(server, user, token, sizes, max_events: int) -> dict[int, tuple[str, int]]:
    """Sessions whose in-memory logs (in the server process) hold exactly N events, by real turns."""
    from asgiref.sync import sync_to_async

    calibration = await sync_to_async(create_session)(user, "resume benchmark: calibration")
    events = await run_turn(server, str(calibration.id), token, words_text(CALIBRATION_WORDS))
    overhead = len(events) - sum('"type": "text-delta"' in raw for raw in events)
    filled = {}
    for size in sizes:
        if size > max_events:
            raise SystemExit(f"{size} events do not fit in a log of EVENT_LOG_MAX_EVENTS={max_events}")
        session = await sync_to_async(create_session)(user, f"resume benchmark: {size} events in memory")
        started = time.perf_counter()
        events = await run_turn(server, str(session.id), token, words_text(size - overhead))
        took = time.perf_counter() - started
        if len(events) > max_events:
            raise RuntimeError(f"the turn made {len(events)} events, more than the log keeps ({max_events})")
        print(f"  filled memory log: {len(events)} events by one scripted turn of {size - overhead} words "
              f"({took:.1f} s, {len(events) / took:,.0f} events/s through the CLI and the engine)", flush=True)
        if abs(len(events) - size) > size // 100:
            raise RuntimeError(f"the turn made {len(events)} events, not the {size} this row is about")
        filled[size] = (str(session.id), len(events))
    return filled


async def fill_redis_logs(redis_url: str, user, sizes) -> dict[int, tuple[str, int]]:
    """Sessions whose Redis logs hold exactly N `data-bench` events, appended from this process."""
    from asgiref.sync import sync_to_async

    from chat.events.durable_seq import last_durable_seq_async
    from chat.events.redis_log import RedisEventLog

    log = RedisEventLog(url=redis_url, seed_last_seq=last_durable_seq_async, prefix=redis_prefix())
    filled = {}
    try:
        for size in sizes:
            session = await sync_to_async(create_session)(user, f"resume benchmark: {size} events in Redis")
            session_id = str(session.id)
            started = time.perf_counter()
            for first in range(0, size, REDIS_BATCH):
                batch = [{"type": "data-bench", "data": {"index": index, "text": REDIS_EVENT_TEXT}}
                         for index in range(first, min(size, first + REDIS_BATCH))]
                await log.append(session_id, None, batch)
            took = time.perf_counter() - started
            last = await log.last_seq(session_id)
            if last != size:
                raise RuntimeError(f"the Redis log of {session_id} ends at seq {last}, not {size}")
            print(f"  filled Redis log: {size} data-bench events appended with RedisEventLog in batches of "
                  f"{REDIS_BATCH} ({took:.2f} s)", flush=True)
            filled[size] = (session_id, size)
    finally:
        await log.close()
    return filled


def p50(values):
    return median(values)


def p99(values):
    return percentile(values, 0.99)


async def measure(server, token, filled, reconnects: int) -> tuple[list[float], dict]:
    """Ping baseline and the reconnects of each size, plus one row of reconnects that replay nothing."""
    smallest = min(filled)
    session_id, last_seq = filled[smallest]
    pings = await ping_round_trips(server, session_id, token, PINGS)
    rows: dict = {}
    cases = [(0, session_id, last_seq, 0)] + [(size, sid, 0, count) for size, (sid, count) in sorted(filled.items())]
    for size, sid, after_seq, expected in cases:
        for _ in range(WARMUP_RECONNECTS):
            await reconnect(server, sid, token, after_seq=after_seq, expected=expected)
        rows[size] = [await reconnect(server, sid, token, after_seq=after_seq, expected=expected)
                      for _ in range(reconnects)]
        server.check_alive()
        done = rows[size]
        print(f"  measured {server.name:6} {size:>6} events: {reconnects} reconnects, live p50 "
              f"{ms(p50([r.live for r in done])):.1f} ms", flush=True)
    return pings, rows


def fmt(value: float | None, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.2f}"


def stat_ms(values: list[float], statistic) -> float | None:
    return ms(statistic(values)) if values else None


def report(redis_url: str, reconnects: int, results: dict) -> None:
    print()
    print("bench.resume: reconnect + resume {after_seq: 0} + ping on a real websocket (websockets client), "
          f"{reconnects} reconnects per row after {WARMUP_RECONNECTS} warm-ups")
    print(f"  servers: daphne 'memory' (REDIS_URL empty: InMemoryEventLog) and daphne 'redis' (RedisEventLog, "
          f"RedisPubSubChannelLayer on {redis_url}); database copilot_bench")
    print(f"  load average when it started: {' '.join(f'{v:.2f}' for v in LOAD_AT_START)} ({os.cpu_count()} CPUs)")
    print("  times in ms from the start of the reconnect (TCP connect + websocket handshake + token check);")
    print("  live = the pong to a ping sent right after the resume; live-last = live minus the last replayed event;")
    print("  row 0 = a reconnect that replays nothing (resume after_seq = the last seq)")
    for name, (pings, rows) in results.items():
        base50, base99 = p50(pings), p99(pings)
        print()
        print(f"  [{name}] baseline ping/pong on an idle socket ({len(pings)} round trips): "
              f"p50 {ms(base50):.3f} ms  p99 {ms(base99):.3f} ms")
        print(f"  {'events':>7} {'B/event':>7} {'handshake':>9} | {'first p50':>9} {'first p99':>9} | "
              f"{'last p50':>8} | {'live p50':>8} {'live p99':>8} | {'live-last':>9} | "
              f"{'first/ping p50':>14} {'live/ping p50':>13} {'live/ping p99':>13}")
        for size, runs in rows.items():
            firsts = [r.first for r in runs if r.first is not None]
            lasts = [r.last for r in runs if r.last is not None]
            lives = [r.live for r in runs]
            after_last = [r.live - r.last for r in runs if r.last is not None]
            per_event = f"{runs[0].event_bytes / runs[0].events:.0f}" if runs[0].events else "-"
            first_ratio = f"{p50(firsts) / base50:13.1f}x" if firsts else f"{'-':>14}"
            print(f"  {size:>7} {per_event:>7} {ms(p50([r.handshake for r in runs])):9.2f} | "
                  f"{fmt(stat_ms(firsts, p50), 9)} {fmt(stat_ms(firsts, p99), 9)} | "
                  f"{fmt(stat_ms(lasts, p50), 8)} | {ms(p50(lives)):8.2f} {ms(p99(lives)):8.2f} | "
                  f"{fmt(stat_ms(after_last, p50), 9)} | "
                  f"{first_ratio} {p50(lives) / base50:12.1f}x {p99(lives) / base99:12.1f}x")
    if {"memory", "redis"} <= set(results):
        memory_rows, redis_rows = results["memory"][1], results["redis"][1]
        print()
        print("  redis / memory, same row (p50):")
        for size in memory_rows:
            if size not in redis_rows:
                continue
            m_runs, r_runs = memory_rows[size], redis_rows[size]
            parts = [f"live {p50([r.live for r in r_runs]) / p50([r.live for r in m_runs]):.2f}x"]
            if size:
                parts.insert(0, f"first event {p50([r.first for r in r_runs]) / p50([r.first for r in m_runs]):.2f}x")
            print(f"  {size:>7} events: " + ", ".join(parts))


async def main(redis_url: str, sizes: tuple[int, ...], reconnects: int) -> None:
    from asgiref.sync import sync_to_async

    from core.conf import copilot_setting
    from localmodel.server import LocalModelServer

    LOAD_AT_START[:] = os.getloadavg()
    raise_open_file_limit()
    model = LocalModelServer()
    model_url = model.start()
    var = make_var_dir()
    user, token = await sync_to_async(create_user_with_token)()
    servers: list[DaphneServer] = []
    redis_sessions: list[str] = []
    results = {}
    try:
        # One event per word, so a turn of N words fills the log with ~N events (no merging of fast deltas).
        memory = DaphneServer(name="memory", local_model_url=model_url, var_dir=var, workspaces_dir=var / "workspaces",
                              extra_env={"COPILOT_DELTA_WINDOW_MS": "0"})
        servers.append(memory)
        redis_server = DaphneServer(name="redis", local_model_url=model_url, var_dir=var,
                                    workspaces_dir=var / "workspaces", redis_url=redis_url)
        servers.append(redis_server)
        memory_filled = await fill_memory_logs(memory, user, token, sizes, copilot_setting("EVENT_LOG_MAX_EVENTS"))
        redis_filled = await fill_redis_logs(redis_url, user, sizes)
        redis_sessions = [sid for sid, _ in redis_filled.values()]
        results["memory"] = await measure(memory, token, memory_filled, reconnects)
        results["redis"] = await measure(redis_server, token, redis_filled, reconnects)
    finally:
        await sync_to_async(clean_up)(*(server.stop for server in servers), model.stop,
                                      lambda: delete_bench_rows(user, var),
                                      lambda: delete_redis_keys(redis_url, redis_sessions),
                                      lambda: remove_var_dir(var))
    report(redis_url, reconnects, results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Reconnect + resume over a websocket, in-memory log vs Redis.")
    parser.add_argument("--reconnects", type=int, default=RECONNECTS, help="measured reconnects per row (default 50)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="events per log (default 1000,10000)")
    arguments = parser.parse_args()
    redis_url = take_redis_url()  # before Django reads the settings: this process keeps the in-memory layer
    setup_django_on_bench_database()
    asyncio.run(main(redis_url, tuple(int(size) for size in arguments.sizes.split(",")), arguments.reconnects))

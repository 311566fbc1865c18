"""Benchmark: time to the first text delta of a turn, cold raw SDK against the product, at 1, 3 and 8 chats at once.

The local model in a process of its own; one daphne process (bench/server_settings.py) on the throw-away
PostgreSQL database `copilot_bench` (bench/common.py), with the in-memory channel layer. Rows, for N chats at once:

  raw cold   N `claude_agent_sdk.query()` calls started together, each a new CLI with the engine's own options
             (the baseline: what every turn cost before warm clients)
  open 3 s   N users each open a chat's websocket (`resume`), wait 3 s as someone typing would, then send: the
             CLI started when the socket resumed (a prewarm)
  next turn  the next message in each of those chats, READING_SECONDS after the first ended (the person reads
             the answer): the CLI stayed connected

Time is from the send (or the `query()` call) to the first `text-delta` (an SDK `StreamEvent` with a
`content_block_delta` for raw). Each row runs ROUNDS times; prints medians, the ratio against raw cold at the same
N, and whether the product meets the target (≤ 0.25× raw cold at every N).

    .venv/bin/python -m bench.ttft           (--rounds R, --levels 1,3,8)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

from bench.common import median, setup_django_on_bench_database
from bench.live import (
    DaphneServer,
    LocalModelProcess,
    clean_up,
    create_session,
    create_user_with_token,
    delete_bench_rows,
    make_var_dir,
    open_socket,
    remove_var_dir,
    script_text,
)

LEVELS = (1, 3, 8)
ROUNDS = 3
TYPING_SECONDS = 3
READING_SECONDS = 1
TARGET_RATIO = 0.25
PROMPT = script_text({"text": "the first words of an answer, streamed one by one to whoever asked for them"})


async def raw_cold(count: int, model_url: str, var_dir) -> list[float]:
    """N cold `query()` calls at once: seconds to each one's first text delta."""
    from asgiref.sync import sync_to_async
    from claude_agent_sdk import query
    from claude_agent_sdk.types import StreamEvent
    from django.conf import settings

    from chat.engine.binding import SessionBinding, TurnBinding
    from chat.engine.options import session_options, tool_gate

    settings.COPILOT = {**settings.COPILOT, "ANTHROPIC_BASE_URL": model_url,
                        "ANTHROPIC_API_KEY": "local-model-placeholder-key",
                        "CLI_HOME_DIR": var_dir / "raw-claude-home", "WORKSPACES_DIR": var_dir / "raw-workspaces"}

    async def one() -> float:
        session_id = str(uuid.uuid4())
        binding = SessionBinding.for_one_turn(session_id, TurnBinding(turn_id="raw", gate=tool_gate(
            session_id=session_id)))
        options = await sync_to_async(session_options)(session_id=session_id, owner_id=None, binding=binding)
        options.session_store = None  # nothing to resume: the store's writes are the product's, not the SDK's
        started, first = time.monotonic(), None

        async def prompt():
            yield {"type": "user", "message": {"role": "user", "content": PROMPT}, "parent_tool_use_id": None,
                   "session_id": session_id}

        async for message in query(prompt=prompt(), options=options):
            if first is None and isinstance(message, StreamEvent) and message.event.get("type") == \
                    "content_block_delta" and message.event.get("delta", {}).get("type") == "text_delta":
                first = time.monotonic() - started
        if first is None:
            raise RuntimeError("the raw turn streamed no text")
        return first

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def first_delta(socket, frame: dict) -> float:
    """Send `frame`; seconds to its turn's first text delta (then read on to its finish)."""
    started = time.monotonic()
    await socket.send(json.dumps(frame))
    first = None
    while True:
        data = json.loads(await asyncio.wait_for(socket.recv(), 60))
        if data.get("type") == "error":
            raise RuntimeError(f"the server refused the send: {data}")
        if data.get("type") != "event":
            continue
        kind = data["chunk"]["type"]
        if kind == "text-delta" and first is None:
            first = time.monotonic() - started
        if kind == "finish":
            if first is None:
                raise RuntimeError("the turn streamed no text")
            return first


async def product(count: int, server: DaphneServer, chats) -> tuple[list[float], list[float]]:
    """N chats at once: the first turn after the page was open TYPING_SECONDS, then the next turn."""

    async def one(session, token) -> tuple[float, float]:
        socket = await open_socket(server.session_url(session.id), token)
        try:
            await socket.send(json.dumps({"type": "resume", "after_seq": 0}))
            await asyncio.sleep(TYPING_SECONDS)  # the person typing: the time the prewarm has
            opened = await first_delta(socket, send(PROMPT))
            await asyncio.sleep(READING_SECONDS)  # the person reads the answer before the next message
            following = await first_delta(socket, send(PROMPT))
            return opened, following
        finally:
            await socket.close()

    results = await asyncio.gather(*(one(session, token) for session, token in chats[:count]))
    return [opened for opened, _ in results], [following for _, following in results]


def send(text: str) -> dict:
    return {"type": "send", "text": text, "client_message_id": str(uuid.uuid4())}


async def main(rounds: int, levels: tuple[int, ...]) -> None:
    from asgiref.sync import sync_to_async

    model = LocalModelProcess()
    var_dir = make_var_dir()
    server = DaphneServer(name="ttft", local_model_url=model.url, var_dir=var_dir, workspaces_dir=var_dir / "ws")
    users = []
    rows: dict[tuple[str, int], list[float]] = {}
    try:
        for _ in range(max(levels)):
            users.append(await sync_to_async(create_user_with_token)())
        await raw_cold(1, model.url, var_dir)  # warm-up: the CLI's files in the page cache
        for round_index in range(rounds):
            for count in levels:
                rows.setdefault(("raw cold", count), []).extend(await raw_cold(count, model.url, var_dir))
                chats = [(await sync_to_async(create_session)(user, f"ttft {round_index}"), token)
                         for user, token in users[:count]]
                opened, following = await product(count, server, chats)
                rows.setdefault(("open 3 s", count), []).extend(opened)
                rows.setdefault(("next turn", count), []).extend(following)
                server.check_alive()
    finally:
        await sync_to_async(clean_up)(server.stop, model.stop,
                                      *[(lambda user=user: delete_bench_rows(user, var_dir)) for user, _ in users],
                                      lambda: remove_var_dir(var_dir))

    print(f"time to first text delta, median of {rounds} rounds (ms); ratio against raw cold at the same N")
    print(f"{'row':<12}" + "".join(f"{f'N={n}':>18}" for n in levels))
    met = True
    for name in ("raw cold", "open 3 s", "next turn"):
        cells = []
        for count in levels:
            value, base = median(rows[(name, count)]), median(rows[("raw cold", count)])
            cells.append(f"{value * 1000:>9.0f} ({value / base:>4.2f}×)")
            if name != "raw cold" and value / base > TARGET_RATIO:
                met = False
        print(f"{name:<12}" + "".join(f"{cell:>18}" for cell in cells))
    print(f"target: the product ≤ {TARGET_RATIO}× raw cold at every N: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    args = parser.parse_args()
    setup_django_on_bench_database()
    asyncio.run(main(args.rounds, tuple(int(n) for n in args.levels.split(","))))

"""Benchmark: what a server process can hold, and what happens past it.

The local model in this process's thread; turns through the engine (`begin_turn`) on the throw-away PostgreSQL
database `copilot_bench` (bench/common.py). Prints:

  at N = 1, 4, 8 concurrent turns: wall time, median time to first text delta and the CLIs' total RSS at the
      peak, for the product and for N raw `ClaudeSDKClient` turns started together (the baseline, same options)
  the memory of one warm idle CLI (RSS of its process tree, after a turn)
  how many CLIs the default budget allows here (70 % of MemAvailable over CLI_RSS_BYTES)
  at 2× capacity (MAX_CONCURRENT_TURNS=2, 4 turns at once): every turn completes, none is refused, and they start
      in the order they were sent

    .venv/bin/python -m bench.capacity
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import median, setup_django_on_bench_database

LEVELS = (1, 4, 8)
PROMPT = '#script [{"text": "an answer of a few words, streamed word by word", "delay_ms": 20}]'


def cli_rss_bytes() -> int:
    """The resident memory of every bundled CLI process on the machine (this benchmark's only)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"claude_agent_sdk/_bundled/claude" not in command:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class PeakRss:
    """Samples the CLIs' RSS every 50 ms while a measurement runs."""

    def __init__(self) -> None:
        self.peak = 0
        self._task: asyncio.Task | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, cli_rss_bytes())
            await asyncio.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *exc) -> None:
        self._task.cancel()


async def main() -> None:
    from asgiref.sync import sync_to_async
    from claude_agent_sdk import ClaudeSDKClient
    from claude_agent_sdk.types import StreamEvent
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from chat.engine.binding import SessionBinding, TurnBinding
    from chat.engine.capacity import memory_capacity
    from chat.engine.options import session_options, tool_gate
    from chat.engine.registry import begin_turn, running_turns
    from chat.events.factory import get_event_log
    from chat.models import ChatSession, Turn, TurnStatus
    from localmodel.server import LocalModelServer

    model = LocalModelServer()
    model_url = model.start()
    var = Path(tempfile.mkdtemp(prefix="copilot-bench-"))
    settings.COPILOT = {**settings.COPILOT, "ANTHROPIC_BASE_URL": model_url,
                        "ANTHROPIC_API_KEY": "local-model-placeholder-key", "WRITE_TITLES": False,
                        "CLI_HOME_DIR": var / "claude-home", "WORKSPACES_DIR": var / "workspaces"}
    users = [await sync_to_async(get_user_model().objects.create)(username=f"bench-{uuid.uuid4().hex[:8]}")
             for _ in range(max(LEVELS))]

    async def raw_turn() -> float:
        session_id = str(uuid.uuid4())
        binding = SessionBinding.for_one_turn(session_id, TurnBinding(turn_id="raw", gate=tool_gate(
            session_id=session_id)))
        options = await sync_to_async(session_options)(session_id=session_id, owner_id=None, binding=binding)
        options.session_store = None
        started, first = time.monotonic(), None
        async with ClaudeSDKClient(options) as client:
            await client.query(PROMPT)
            async for message in client.receive_response():
                if first is None and isinstance(message, StreamEvent) and message.event.get("type") == \
                        "content_block_delta":
                    first = time.monotonic() - started
        return first or float("nan")

    async def product_turn(user, log_first: dict) -> str:
        session = await sync_to_async(ChatSession.objects.create)(owner=user, title="capacity benchmark")
        started = time.monotonic()
        begun = await begin_turn(session=session, text=PROMPT, client_message_id=uuid.uuid4())
        log_first[str(begun.turn.id)] = started
        await running_turns.task_for(str(session.id))
        return str(begun.turn.id)

    async def first_deltas(turn_ids: list[str], sent: dict) -> list[float]:
        times = []
        for turn_id in turn_ids:
            turn = await sync_to_async(Turn.objects.get)(pk=turn_id)
            if turn.status != TurnStatus.COMPLETED:
                raise RuntimeError(f"turn {turn_id} ended {turn.status}: {turn.error}")
            times.append((turn.first_token_at - turn.started_at).total_seconds())
        return times

    rows = []
    try:
        await raw_turn()  # warm-up: the CLI's files in the page cache
        for count in LEVELS:
            with PeakRss() as raw_rss:
                began = time.monotonic()
                raw_first = await asyncio.gather(*(raw_turn() for _ in range(count)))
                raw_wall = time.monotonic() - began
            await running_turns.pool.close_all()
            sent: dict = {}
            with PeakRss() as product_rss:
                began = time.monotonic()
                turn_ids = await asyncio.gather(*(product_turn(user, sent) for user in users[:count]))
                product_wall = time.monotonic() - began
            product_first = await first_deltas(turn_ids, sent)
            rows.append((count, raw_wall, median(raw_first), raw_rss.peak, product_wall, median(product_first),
                         product_rss.peak))
        await asyncio.sleep(1)  # the turns' CLIs are idle and warm now
        warm = running_turns.pool.count()
        idle_rss = cli_rss_bytes() / max(1, warm)
        await running_turns.pool.close_all()

        settings.COPILOT = {**settings.COPILOT, "MAX_CONCURRENT_TURNS": 2}
        sent = {}
        order = []
        for user in users[:4]:  # sent one after the other, a moment apart: their order is known
            session = await sync_to_async(ChatSession.objects.create)(owner=user, title="past capacity")
            order.append(str((await begin_turn(session=session, text=PROMPT, client_message_id=uuid.uuid4())).turn.id))
        await asyncio.gather(*(task for task in list(running_turns._tasks.values())))
        turns = [await sync_to_async(Turn.objects.get)(pk=turn_id) for turn_id in order]
        first_tokens = [turn.first_token_at for turn in turns]
        completed = all(turn.status == TurnStatus.COMPLETED for turn in turns)
        in_order = first_tokens == sorted(first_tokens)
    finally:
        await running_turns.shutdown()
        close_log = getattr(get_event_log(), "close", None)
        if close_log is not None:
            await close_log()
        for user in users:
            await sync_to_async(user.delete)()
        model.stop()

    mib = 1024 * 1024
    print("N concurrent turns: wall s, median first token ms, peak CLI RSS MiB — raw SDK | product (ratio)")
    for count, raw_wall, raw_first, raw_rss, wall, first, rss in rows:
        print(f"  N={count}: raw {raw_wall:5.2f} s {raw_first * 1000:6.0f} ms {raw_rss / mib:6.0f} MiB | "
              f"product {wall:5.2f} s ({wall / raw_wall:.2f}×) {first * 1000:6.0f} ms ({first / raw_first:.2f}×) "
              f"{rss / mib:6.0f} MiB ({rss / max(1, raw_rss):.2f}×)")
    print(f"one warm idle CLI: {idle_rss / mib:.0f} MiB ({warm} warm)")
    print(f"CLIs the default budget allows here: {memory_capacity()} "
          f"(CLI_RSS_BYTES {settings.COPILOT['CLI_RSS_BYTES'] / mib:.0f} MiB)")
    print(f"at 2× capacity (2 slots, 4 turns): all completed: {completed}; started in the order sent: {in_order}")


if __name__ == "__main__":
    setup_django_on_bench_database()
    asyncio.run(main())

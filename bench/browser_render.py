"""Benchmark: the chat page's main-thread cost of one streamed turn, in an empty chat and in a long one.

One daphne process (bench/server_settings.py) on a throw-away SQLite file, the local model in a process of its
own, and Debian's Chromium driven by Playwright. A user logs in through the login page; then, alternating, each
run opens a fresh chat page and plays one scripted turn through the composer (Enter):

  empty     a new chat (the baseline)
  long      a chat with MESSAGES saved messages (half questions, half Markdown answers with headings, lists,
            a table, a code block and tool calls), written with the turn actions, so the page renders them
            from its snapshot before the turn starts

The turn: 100 words and 3 parallel `run_block` `wait` calls, then 100 more words, streamed at about one word per
DELAY_MS (the server merges deltas within its DELTA_WINDOW_MS). Measured with the DevTools protocol's
`Performance.getMetrics` just before the message is sent and once the answer's last word is shown and the page
is idle again (two animation frames later): the deltas of TaskDuration (all main-thread work), ScriptDuration,
LayoutDuration and RecalcStyleDuration. Prints the median of each over the runs, the long/empty ratios, and
whether TaskDuration meets the target (long ≤ 1.2 × empty).

    .venv/bin/python -m bench.browser_render            (--runs N, --messages N)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from pathlib import Path

from bench.common import median

RUNS = 5
MESSAGES = 120
DELAY_MS = 20
TARGET_RATIO = 1.2
CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "bench-password-not-secret"
METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")
LAST_WORD = "finished-bench-turn"
TIMEOUT_MS = 120_000


def setup_django(scratch: Path) -> None:
    """Point Django at a throw-away SQLite file in `scratch` and migrate it (before any model is imported)."""
    os.environ["DATABASE_URL"] = f"sqlite:///{scratch / 'bench.sqlite3'}"
    os.environ["COPILOT_VAR_DIR"] = str(scratch / "var")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot_site.settings")
    os.environ.setdefault("COPILOT_LOG_LEVEL", "WARNING")
    os.environ.pop("REDIS_URL", None)  # one server: the in-memory event log and channel layer
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def words(count: int, offset: int = 0) -> str:
    """Prose with a little inline Markdown, as a model writes it."""
    vocabulary = ["the", "block", "runs", "**quickly**", "and", "returns", "`seconds`", "to", "its", "agent,",
                  "which", "waits", "for", "every", "branch", "before", "it", "joins", "them."]
    return " ".join(vocabulary[(offset + n) % len(vocabulary)] for n in range(count))


def turn_script() -> str:
    import json

    wait = {"name": "mcp__copilot__run_block", "input": {"block": "wait", "input": {"seconds": 0.3}}}
    steps = [{"text": words(100), "tools": [wait, wait, wait], "delay_ms": DELAY_MS},
             {"text": f"{words(99, 7)} {LAST_WORD}", "delay_ms": DELAY_MS}]
    return "#script " + json.dumps(steps)


ANSWER = """## Step {n}: what the agent does

The agent *fetches* the input, runs the `text` block and joins the branches:

1. read the values of node `a{n}`
2. fill the template with **every** value
3. hand the result to the next node

| node | block | seconds |
|------|-------|--------:|
| a{n} | text  | 0.{n} |
| b{n} | wait  | 1.{n} |

```python
def step_{n}(values):
    return "Hello {{name}}".format(**values)
```

See https://example.com/docs/{n} for the rest. {prose}
"""


def long_chat(owner, messages: int):
    """A session with `messages` saved messages (pairs of question and answer), through the turn actions."""
    from chat.actions.turns import (
        do_finish_turn,
        do_record_tool_input,
        do_record_tool_output,
        do_record_turn_start,
        do_save_message_parts,
        do_start_turn,
    )
    from chat.models import ChatSession, TurnStatus

    session = ChatSession.objects.create(owner=owner, title="A long chat")
    seq = 0
    for n in range(messages // 2):
        turn = do_start_turn(session=session, text=f"Question {n}: how does step {n} of my agent work? " + words(30, n),
                             client_message_id=uuid.uuid4()).turn
        seq += 1
        do_record_turn_start(turn_id=turn.id, seq=seq)
        for call in range(2):
            tool_use_id = f"toolu_bench_{n}_{call}"
            seq += 1
            do_record_tool_input(turn_id=turn.id, message_id=turn.assistant_message_id, tool_use_id=tool_use_id,
                                 name="mcp__copilot__run_block", part_index=call + 1, seq=seq,
                                 tool_input={"block": "wait", "input": {"seconds": call}})
            seq += 1
            do_record_tool_output(turn_id=turn.id, tool_use_id=tool_use_id, seq=seq, output={"seconds": call})
        seq += 1
        do_save_message_parts(message_id=turn.assistant_message_id, seq=seq,
                              parts=[{"type": "text", "index": 0, "text": ANSWER.format(n=n, prose=words(60, n))}])
        seq += 1
        do_finish_turn(turn_id=turn.id, status=TurnStatus.COMPLETED, seq=seq)
    return session


def log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Your chats").wait_for(timeout=TIMEOUT_MS)


def next_frames(page) -> None:
    """Wait until the page has rendered two more frames: the work a change caused is done by then."""
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


def measure_turn(page, cdp, base_url: str, session_id) -> dict[str, float]:
    """Open the chat, play the turn, return the metric deltas in ms."""
    page.goto(f"{base_url}/sessions/{session_id}/")
    send = page.get_by_role("button", name="Send")
    send.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function("() => !document.getElementById('send').disabled", timeout=TIMEOUT_MS)
    next_frames(page)
    box = page.get_by_label("Message")
    box.fill(turn_script())
    before = metrics(cdp)
    box.press("Enter")
    # Polled in the page, so the cheap test comes first: Send is disabled until the turn's `finish`.
    page.wait_for_function(
        """(lastWord) => {
            if (document.getElementById('send').disabled) return false;
            const answers = document.querySelectorAll('.message.assistant .text');
            return answers.length > 0 && answers[answers.length - 1].textContent.includes(lastWord);
        }""", arg=LAST_WORD, timeout=TIMEOUT_MS, polling=100)
    next_frames(page)
    after = metrics(cdp)
    return {name: (after[name] - before[name]) * 1000 for name in METRICS}


def metrics(cdp) -> dict[str, float]:
    return {item["name"]: item["value"] for item in cdp.send("Performance.getMetrics")["metrics"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--messages", type=int, default=MESSAGES)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit("bench.browser_render needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")

    scratch = Path(tempfile.mkdtemp(prefix="copilot-bench-browser-"))
    setup_django(scratch)

    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from playwright.sync_api import sync_playwright

    from bench.live import DaphneServer, LocalModelProcess, clean_up, remove_var_dir
    from chat.models import ChatSession

    print(f"bench.browser_render: {args.runs} runs each, {args.messages} saved messages in the long chat; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    model = server = None
    try:
        model = LocalModelProcess()
        server = DaphneServer(name="web", local_model_url=model.url, var_dir=scratch,
                              workspaces_dir=scratch / "workspaces")
        user = get_user_model().objects.create(username=f"bench-{uuid.uuid4().hex[:8]}",
                                               password=make_password(PASSWORD))
        results: dict[str, list[dict[str, float]]] = {"empty": [], "long": []}
        # Playwright's sync API keeps an event loop on this thread; the ORM calls here stay synchronous.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            context = browser.new_context(viewport={"width": 1000, "height": 800})
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
            base_url = f"http://127.0.0.1:{server.port}"
            log_in(page, base_url, user.username)
            # One warm-up of each (caches, the CLI's first start), then the runs, alternating.
            for label in ("empty", "long"):
                session = (ChatSession.objects.create(owner=user, title="warm-up") if label == "empty"
                           else long_chat(user, args.messages))
                measure_turn(page, cdp, base_url, session.id)
            for run in range(args.runs):
                for label in ("empty", "long"):
                    session = (ChatSession.objects.create(owner=user, title=f"empty {run}") if label == "empty"
                               else long_chat(user, args.messages))
                    figures = measure_turn(page, cdp, base_url, session.id)
                    results[label].append(figures)
                    print(f"  run {run + 1} {label:>5}: " + "  ".join(f"{name} {value:7.1f} ms"
                                                                   for name, value in figures.items()), flush=True)
            browser.close()
        report(results, args.messages)
    finally:
        clean_up(*(step for step in (server and server.stop, model and model.stop,
                                     lambda: remove_var_dir(scratch)) if step))


def report(results: dict[str, list[dict[str, float]]], messages: int) -> None:
    print()
    print(f"{'median ms per turn':<22}{'empty chat':>12}{f'{messages} messages':>16}{'ratio':>9}")
    ratios = {}
    for name in METRICS:
        empty = median([run[name] for run in results["empty"]])
        long = median([run[name] for run in results["long"]])
        ratios[name] = long / empty if empty else float("inf")
        print(f"{name:<22}{empty:>12.1f}{long:>16.1f}{ratios[name]:>8.2f}×")
    verdict = "meets" if ratios["TaskDuration"] <= TARGET_RATIO else "misses"
    print(f"\nTaskDuration ratio {ratios['TaskDuration']:.2f}× — {verdict} the target (≤ {TARGET_RATIO}×)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

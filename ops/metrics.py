"""Prometheus metrics (PROTOCOL §9): what turns, tool calls and agent runs did, counted where they happen.

Every process of one machine (the web server and the agents workers `serve` starts) writes its counters and
histograms to COPILOT["METRICS_DIR"] (prometheus_client's multiprocess mode, set up in copilot_site/settings.py);
`/metrics` adds them up and adds what only the web process knows at the moment of the scrape: its running turns,
warm clients and sockets, and from the database the stale turns and stuck tool calls of the whole deployment.

Labels stay bounded: a tool is labelled by its name only when the policy knows it (the copilot's own tools, the
file tools, granted and well-known built-in tools), else "other"; never a session or user id.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from chat.consumers import open_socket_count
from chat.engine.observers import TurnInfo, TurnObserver
from chat.engine.policy import SUBAGENT_TOOLS, TurnLimits, grants
from chat.engine.registry import running_turns
from core.conf import copilot_setting

logger = logging.getLogger(__name__)

# Chat latencies: a first token in well under a second to a few seconds, turns of seconds to the time limit (600 s).
FIRST_TOKEN_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60)
TURN_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
TOOL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
WAIT_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900)
# Built-in tools of the CLI that the policy refuses by default: labelled by name, so denials of them show.
KNOWN_BUILTIN_TOOLS = frozenset({"Bash", "BashOutput", "KillShell", "WebFetch", "WebSearch", "NotebookEdit",
                                 "TodoWrite", "MultiEdit", "LS", "ExitPlanMode", *SUBAGENT_TOOLS})
OTHER_TOOL = "other"
USAGE_KINDS = {"input_tokens": "input", "output_tokens": "output", "cache_read_input_tokens": "cache_read",
               "cache_creation_input_tokens": "cache_creation"}

turns = Counter("copilot_turns", "Turns ended, by status.", ["status"])
turn_duration = Histogram("copilot_turn_duration_seconds", "From a turn's start to its end.", buckets=TURN_BUCKETS)
time_to_first_token = Histogram("copilot_time_to_first_token_seconds",
                                "From a turn's start to its first text or reasoning delta.",
                                buckets=FIRST_TOKEN_BUCKETS)
tool_calls = Counter("copilot_tool_calls", "Tool calls ended, by tool and status.", ["tool", "status"])
tool_call_duration = Histogram("copilot_tool_call_duration_seconds", "From a tool call's input to its end.",
                               ["tool"], buckets=TOOL_BUCKETS)
policy_denials = Counter("copilot_policy_denials", "Tool calls the policy refused, by tool and kind.",
                         ["tool", "kind"])
model_retries = Counter("copilot_model_retries", "Retries of the model the CLI reported.")
model_tokens = Counter("copilot_model_tokens", "Tokens of ended turns, by kind.", ["kind"])
waits = Histogram("copilot_wait_seconds", "How long turns waited, by kind (capacity, approval).", ["kind"],
                  buckets=WAIT_BUCKETS)
agent_runs = Counter("copilot_agent_runs", "Agent runs ended, by status.", ["status"])


def tool_label(tool_name: str) -> str:
    """The tool's name when it is one of a bounded set; "other" for a name the model made up."""
    if tool_name in KNOWN_BUILTIN_TOOLS or grants(tool_name, TurnLimits.from_settings()):
        return tool_name
    return OTHER_TOOL


class MetricsObserver(TurnObserver):
    """Counts each turn's moments as the engine reports them (chat.engine.observers)."""

    def first_token(self, turn: TurnInfo, *, seconds: float) -> None:
        time_to_first_token.observe(seconds)

    def tool_call_ended(self, turn: TurnInfo, *, tool_call_id: str, tool_name: str, status: str,
                        seconds: float) -> None:
        tool = tool_label(tool_name)
        tool_calls.labels(tool=tool, status=status).inc()
        tool_call_duration.labels(tool=tool).observe(seconds)

    def wait_ended(self, turn: TurnInfo, *, kind: str, key: str, seconds: float, outcome: str) -> None:
        waits.labels(kind=kind).observe(seconds)

    def model_retry(self, turn: TurnInfo, *, attempt: int, status: int | None) -> None:
        model_retries.inc()

    def policy_denial(self, *, session_id: str, turn_id: str, tool_name: str, kind: str) -> None:
        policy_denials.labels(tool=tool_label(tool_name), kind=kind).inc()

    def turn_ended(self, turn: TurnInfo, *, status: str, seconds: float, usage: dict[str, Any] | None) -> None:
        turns.labels(status=str(status)).inc()
        turn_duration.observe(seconds)
        for field, kind in USAGE_KINDS.items():
            count = (usage or {}).get(field) or 0
            if count > 0:
                model_tokens.labels(kind=kind).inc(count)


def count_agent_run(status: str) -> None:
    """agents.observers: a run ended (in a worker, or cancelled in the web process)."""
    agent_runs.labels(status=str(status)).inc()


class LiveGauges(Collector):
    """What this process has now (read at each scrape) and what the database says needs a staff member."""

    def __init__(self, *, ready: dict[str, str] | None = None, attention: Any = None) -> None:
        self.ready = ready or {}
        self.attention = attention  # chat.selectors.ModerationCounts, or None when the database did not answer

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("copilot_running_turns", "Turns this process runs.", value=running_turns.running_count())
        yield GaugeMetricFamily("copilot_warm_clients", "CLI processes this process keeps connected between turns.",
                                value=running_turns.warm_client_count())
        yield GaugeMetricFamily("copilot_websocket_connections", "Websockets open on this process.",
                                value=open_socket_count())
        ready = GaugeMetricFamily("copilot_ready", "1 when a readiness check of /readyz passes, else 0.",
                                  labels=["check"])
        for check, value in self.ready.items():
            ready.add_metric([check], 1.0 if value in {"ok", "skipped"} else 0.0)
        yield ready
        if self.attention is not None:
            yield GaugeMetricFamily("copilot_stale_turns", "Turns marked running whose heartbeat stopped "
                                    "(STALE_TURN_SECONDS), in the whole deployment.",
                                    value=self.attention.stale_turns)
            yield GaugeMetricFamily("copilot_stuck_tool_calls", "Tool calls running longer than "
                                    "STUCK_TOOL_CALL_SECONDS or in a stale turn, in the whole deployment.",
                                    value=self.attention.stuck_tool_calls)


def exposition(*, ready: dict[str, str], attention: Any) -> bytes:
    """The text /metrics serves: every process's figures, added up, and this process's gauges."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(copilot_setting("METRICS_DIR")))
    registry.register(LiveGauges(ready=ready, attention=attention))
    return generate_latest(registry)


FIGURES_FILE = re.compile(r"^[a-z_]+_(\d+)\.db$")


def forget_processes_gone(folder: Path | None = None) -> int:
    """Remove the figures of processes that no longer run (at a server's start, before its workers start).

    Returns how many files went. Figures of a worker that died while the server runs stay until then: its counts
    are part of the totals.
    """
    folder = Path(folder or copilot_setting("METRICS_DIR"))
    removed = 0
    for path in folder.glob("*.db"):
        match = FIGURES_FILE.match(path.name)
        if match is None or _alive(int(match.group(1))):
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""What the agent page shows of its runs (reads only): a run history, each run's nodes as a timeline, and the runs
over time by status. The figures are drawn on the server as SVG (no script, nothing inline for the CSP to block)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agents.models import Agent, AgentRun, RunStatus

TIMELINE_WIDTH = 600
TIMELINE_ROW = 18
CHART_WIDTH = 600
CHART_HEIGHT = 120
# The chart's windows: how far back, and the width of one bar.
WINDOWS = {"24h": (timedelta(hours=24), timedelta(hours=1)), "14d": (timedelta(days=14), timedelta(days=1))}
STATUS_ORDER = [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.RUNNING, RunStatus.QUEUED]
HISTORY_LIMIT = 50


def run_duration_seconds(run: AgentRun) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return (run.finished_at - run.started_at).total_seconds()


def run_history(agent: Agent, *, limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
    """The agent's newest runs: when, what started them, how they ended and how long they took."""
    runs = agent.runs.order_by("-queued_at", "id").only("id", "status", "trigger", "queued_at", "started_at",
                                                         "finished_at", "error")[:limit]
    return [{"run": run, "duration": run_duration_seconds(run)} for run in runs]


@dataclass
class TimelineBar:
    node_id: str
    block: str
    status: str
    offset_ms: int
    duration_ms: int
    x: float = 0
    width: float = 0
    y: int = 0


@dataclass
class Timeline:
    bars: list[TimelineBar] = field(default_factory=list)
    total_ms: int = 0
    width: int = TIMELINE_WIDTH
    height: int = 0


def node_timeline(run: AgentRun, nodes: list) -> Timeline | None:
    """Each node that ran as a bar: from when it started (after the run did) for as long as it took."""
    if run.started_at is None:
        return None
    bars = []
    for node in nodes:
        if node.started_at is None:
            continue
        end = node.finished_at or run.finished_at or node.started_at
        bars.append(TimelineBar(node_id=node.node_id, block=node.block, status=node.status,
                                offset_ms=max(0, round((node.started_at - run.started_at).total_seconds() * 1000)),
                                duration_ms=max(0, round((end - node.started_at).total_seconds() * 1000))))
    if not bars:
        return None
    total = max(1, max(bar.offset_ms + bar.duration_ms for bar in bars))
    label_width = 140
    scale = (TIMELINE_WIDTH - label_width - 60) / total
    for row, bar in enumerate(bars):
        bar.x = round(label_width + bar.offset_ms * scale, 1)
        bar.width = round(max(2.0, bar.duration_ms * scale), 1)
        bar.y = row * TIMELINE_ROW
    return Timeline(bars=bars, total_ms=total, height=len(bars) * TIMELINE_ROW + 4)


@dataclass
class ChartSegment:
    status: str
    count: int
    y: float
    height: float


@dataclass
class ChartBar:
    start: datetime
    x: float
    width: float
    segments: list[ChartSegment]
    total: int


@dataclass
class RunsChart:
    window: str
    bars: list[ChartBar]
    totals: dict[str, int]
    peak: int
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


def runs_over_time(agent: Agent, *, now: datetime, window: str = "24h") -> RunsChart:
    """The agent's runs queued in the window, counted by status per bar (an hour, or a day), oldest bar first."""
    span, step = WINDOWS[window]
    buckets = int(span / step)
    first = now - step * buckets
    counts: list[dict[str, int]] = [{} for _ in range(buckets)]
    totals: dict[str, int] = {}
    for queued_at, status in agent.runs.filter(queued_at__gt=first).values_list("queued_at", "status"):
        index = min(buckets - 1, int((queued_at - first) / step))
        counts[index][status] = counts[index].get(status, 0) + 1
        totals[status] = totals.get(status, 0) + 1
    peak = max([sum(bucket.values()) for bucket in counts] + [1])
    bar_width = CHART_WIDTH / buckets
    bars = []
    for index, bucket in enumerate(counts):
        segments, top = [], float(CHART_HEIGHT)
        for status in STATUS_ORDER:
            count = bucket.get(status, 0)
            if count:
                height = round(count / peak * (CHART_HEIGHT - 10), 1)
                top -= height
                segments.append(ChartSegment(status=status, count=count, y=round(top, 1), height=height))
        bars.append(ChartBar(start=first + step * index, x=round(index * bar_width + 1, 1),
                             width=round(bar_width - 2, 1), segments=segments, total=sum(bucket.values())))
    return RunsChart(window=window, bars=bars, totals={status: totals[status] for status in STATUS_ORDER
                                                       if status in totals}, peak=peak)

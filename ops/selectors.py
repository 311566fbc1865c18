"""Reads of the staff dashboard (/admin/dashboard/): turns, latencies, tool calls, failures and users over a window.

Every figure comes from aggregate queries, a fixed number whatever the rows: grouped by time bucket in SQL
(`BucketIndex`). Percentiles are PostgreSQL's `percentile_cont` there; on SQLite, which has none, the durations
of the window are read in one query and the same interpolation is done here (`percentile_cont`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, DateTimeField, F, FloatField, Func, IntegerField, Q, Sum, Value
from django.utils import timezone

from chat.models import Approval, ApprovalDecision, DecidedBy, ToolCall, ToolCallStatus, Turn, TurnStatus
from core.errors import BadInput

MAX_TOOLS = 15  # the most-called tools the dashboard shows


@dataclass(frozen=True)
class Window:
    name: str
    label: str
    span: timedelta
    bucket: timedelta

    @property
    def buckets(self) -> int:
        return int(self.span / self.bucket)

    def origin(self, now: datetime) -> datetime:
        """The start of the first bucket: whole buckets (in UTC) up to and including the one `now` is in."""
        step = self.bucket.total_seconds()
        current = math.floor(now.timestamp() / step) * step
        return datetime.fromtimestamp(current - (self.buckets - 1) * step, tz=UTC)


WINDOWS = {
    "hour": Window("hour", "last hour", timedelta(hours=1), timedelta(minutes=5)),
    "day": Window("day", "last day", timedelta(days=1), timedelta(hours=1)),
    "week": Window("week", "last week", timedelta(days=7), timedelta(hours=6)),
}
DEFAULT_WINDOW = "day"


def window_named(name: str | None) -> Window:
    if not name:
        return WINDOWS[DEFAULT_WINDOW]
    if name not in WINDOWS:
        raise BadInput(f"window must be one of {', '.join(WINDOWS)}")
    return WINDOWS[name]


# --- SQL that both backends speak ---


class SecondsBetween(Func):
    """end - start in seconds, as a float (NULL when either is NULL)."""

    output_field = FloatField()

    def __init__(self, end: str, start: str) -> None:
        super().__init__(F(end), F(start))

    def as_sql(self, compiler, connection, **extra_context):
        (end, end_params), (start, start_params) = (compiler.compile(e) for e in self.source_expressions)
        if connection.vendor == "postgresql":
            return f"EXTRACT(EPOCH FROM ({end} - {start}))", (*end_params, *start_params)
        return f"((julianday({end}) - julianday({start})) * 86400.0)", (*end_params, *start_params)


class BucketIndex(Func):
    """Which bucket of `step` from `origin` a time falls in: 0, 1, … (the time is never before `origin`)."""

    output_field = IntegerField()

    def __init__(self, field: str, *, origin: datetime, step: timedelta) -> None:
        super().__init__(F(field), Value(origin, output_field=DateTimeField()))
        self.step = step.total_seconds()

    def as_sql(self, compiler, connection, **extra_context):
        (time, time_params), (origin, origin_params) = (compiler.compile(e) for e in self.source_expressions)
        if connection.vendor == "postgresql":
            return (f"CAST(FLOOR(EXTRACT(EPOCH FROM ({time} - {origin})) / %s) AS integer)",
                    (*time_params, *origin_params, self.step))
        # julianday is a float of days: whole milliseconds first, so 12:05 is not 12:04:59.99999 (integer division).
        return (f"CAST(ROUND((julianday({time}) - julianday({origin})) * 86400000.0) AS integer) / %s",
                (*time_params, *origin_params, round(self.step * 1000)))


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont: the `fraction` quantile with linear interpolation; NULLs are ignored."""

    template = "percentile_cont(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float) -> None:
        super().__init__(expression)
        self.fraction = float(fraction)

    def as_sql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, fraction=repr(self.fraction), **extra_context)


def percentile_cont(values: Iterable[float | None], fraction: float) -> float | None:
    """What percentile_cont gives: the value at rank fraction × (n - 1), interpolated; None without values."""
    ordered = sorted(value for value in values if value is not None)
    if not ordered:
        return None
    rank = fraction * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def has_percentiles() -> bool:
    return connection.vendor == "postgresql"


# --- the dashboard ---

FAILED_CALL_STATUSES = [ToolCallStatus.FAILED, ToolCallStatus.INTERRUPTED]
TURN_STATUSES = [status for status in TurnStatus.values]
TIMINGS = {"ttft": ("first_token_at", "started_at"), "duration": ("finished_at", "started_at")}


def _percentiles(expression: Any, prefix: str) -> dict[str, Percentile]:
    return {f"{prefix}_p50": Percentile(expression, 0.5), f"{prefix}_p95": Percentile(expression, 0.95)}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# Approvals asked in a bucket, by how they ended (PROTOCOL §7): a person's answer, nobody's, or still waiting.
APPROVAL_OUTCOMES = {
    "allowed": Count("id", filter=Q(decision=ApprovalDecision.ALLOW)),
    "denied": Count("id", filter=Q(decision=ApprovalDecision.DENY, decided_by=DecidedBy.USER)),
    "timed_out": Count("id", filter=Q(decided_by=DecidedBy.TIMEOUT)),
    "stopped_or_cancelled": Count("id", filter=Q(decided_by__in=[DecidedBy.STOP, DecidedBy.CANCEL])),
    "waiting": Count("id", filter=Q(decision="")),
}


def dashboard(window: Window, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything the dashboard draws over `window`, as JSON-ready lists (one value per bucket) and totals."""
    now = now or timezone.now()
    origin = window.origin(now)
    buckets = window.buckets
    turns = Turn.objects.filter(started_at__gte=origin)
    calls = ToolCall.objects.filter(started_at__gte=origin)
    in_bucket = BucketIndex("started_at", origin=origin, step=window.bucket)
    timings = {name: SecondsBetween(*fields) for name, fields in TIMINGS.items()}

    # Per bucket: turns by status, retries, denials, active users (and on PostgreSQL the percentiles).
    per_bucket = {f"status_{status}": Count("id", filter=Q(status=status)) for status in TURN_STATUSES}
    per_bucket |= {"retries": Sum("model_retries"), "denials": Sum("policy_denials"),
                   "users": Count("session__owner_id", distinct=True)}
    overall = {"turns": Count("id"), "users": Count("session__owner_id", distinct=True),
               "retries": Sum("model_retries"), "denials": Sum("policy_denials"),
               "failed": Count("id", filter=Q(status=TurnStatus.FAILED))}
    if has_percentiles():
        for name, seconds in timings.items():
            per_bucket |= _percentiles(seconds, name)
            overall |= _percentiles(seconds, name)
    rows = {row["bucket"]: row for row in turns.annotate(bucket=in_bucket).values("bucket").annotate(**per_bucket)
            .order_by()}
    totals = turns.aggregate(**overall)
    if not has_percentiles():
        _percentiles_in_python(turns, in_bucket, timings, rows, totals)

    def series(name: str) -> list:
        missing = None if name.endswith(("_p50", "_p95")) else 0  # no turns: no latency, but zero of a count
        return [_rounded(value) if (value := rows.get(index, {}).get(name)) is not None else missing
                for index in range(buckets)]

    call_buckets = {row["bucket"]: row for row in calls.annotate(bucket=in_bucket).values("bucket").annotate(
        calls=Count("id"), failed=Count("id", filter=Q(status__in=FAILED_CALL_STATUSES))).order_by()}
    approval_buckets = {row["bucket"]: row for row in Approval.objects.filter(requested_at__gte=origin).annotate(
        bucket=BucketIndex("requested_at", origin=origin, step=window.bucket)).values("bucket").annotate(
        **APPROVAL_OUTCOMES).order_by()}

    def approvals(name: str) -> list[int]:
        return [approval_buckets.get(index, {}).get(name, 0) for index in range(buckets)]
    return {
        "window": window.name,
        "label": window.label,
        "buckets": [(origin + index * window.bucket).isoformat() for index in range(buckets)],
        "bucket_seconds": window.bucket.total_seconds(),
        "turns": {status: series(f"status_{status}") for status in TURN_STATUSES},
        "ttft": {"p50": series("ttft_p50"), "p95": series("ttft_p95")},
        "duration": {"p50": series("duration_p50"), "p95": series("duration_p95")},
        "failures": {
            "failed_turns": series(f"status_{TurnStatus.FAILED}"),
            "failed_tool_calls": [call_buckets.get(index, {}).get("failed", 0) for index in range(buckets)],
            "policy_denials": series("denials"),
            "model_retries": series("retries"),
        },
        "users": series("users"),
        "approvals": {name: approvals(name) for name in APPROVAL_OUTCOMES},
        "tools": _tools(calls),
        "totals": {
            "turns": totals["turns"], "failed_turns": totals["failed"], "users": totals["users"],
            "model_retries": totals["retries"] or 0, "policy_denials": totals["denials"] or 0,
            "tool_calls": sum(row["calls"] for row in call_buckets.values()),
            "failed_tool_calls": sum(row["failed"] for row in call_buckets.values()),
            "approvals": sum(sum(row[name] for name in APPROVAL_OUTCOMES) for row in approval_buckets.values()),
            "approvals_waiting": sum(row["waiting"] for row in approval_buckets.values()),
            **{key: _rounded(totals.get(key)) for key in ("ttft_p50", "ttft_p95", "duration_p50", "duration_p95")},
        },
    }


def _percentiles_in_python(turns, in_bucket, timings, rows: dict, totals: dict) -> None:
    """SQLite: the window's first-token times and durations in one query, their percentiles here."""
    values = turns.annotate(bucket=in_bucket, **timings).values_list("bucket", *timings)
    by_bucket: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    everything: dict[str, list] = defaultdict(list)
    for bucket, *seconds in values:
        for name, value in zip(timings, seconds, strict=True):
            by_bucket[bucket][name].append(value)
            everything[name].append(value)
    for bucket, named in by_bucket.items():
        row = rows.setdefault(bucket, {})
        for name, found in named.items():
            row[f"{name}_p50"], row[f"{name}_p95"] = percentile_cont(found, 0.5), percentile_cont(found, 0.95)
    for name in timings:
        totals[f"{name}_p50"] = percentile_cont(everything[name], 0.5)
        totals[f"{name}_p95"] = percentile_cont(everything[name], 0.95)


def _tools(calls) -> list[dict[str, Any]]:
    """The most-called tools: calls, failures, and p50/p95 of the durations of those that ended."""
    seconds = SecondsBetween("finished_at", "started_at")
    counts = {"calls": Count("id"), "failed": Count("id", filter=Q(status__in=FAILED_CALL_STATUSES))}
    if has_percentiles():
        rows = calls.values("name").annotate(**counts, **_percentiles(seconds, "seconds")).order_by("-calls", "name")
        return [{"tool": row["name"], "calls": row["calls"], "failed": row["failed"],
                 "p50": _rounded(row["seconds_p50"]), "p95": _rounded(row["seconds_p95"])} for row in rows[:MAX_TOOLS]]
    by_tool: dict[str, dict[str, Any]] = {}
    for name, status, duration in calls.annotate(seconds=seconds).values_list("name", "status", "seconds"):
        tool = by_tool.setdefault(name, {"tool": name, "calls": 0, "failed": 0, "durations": []})
        tool["calls"] += 1
        tool["failed"] += status in FAILED_CALL_STATUSES
        tool["durations"].append(duration)
    ranked = sorted(by_tool.values(), key=lambda tool: (-tool["calls"], tool["tool"]))[:MAX_TOOLS]
    return [{"tool": tool["tool"], "calls": tool["calls"], "failed": tool["failed"],
             "p50": _rounded(percentile_cont(tool["durations"], 0.5)),
             "p95": _rounded(percentile_cont(tool["durations"], 0.95))} for tool in ranked]

"""Reads of usage: an answer's tokens and cost summed per session and per user per day, and what is left of the
user's daily budget (USER_DAILY_BUDGET_USD)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from django.utils import timezone

from chat.models import Message, UsageDay
from core.conf import copilot_setting

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
HISTORY_DAYS = 30


def empty_usage() -> dict[str, Any]:
    return {**dict.fromkeys(USAGE_FIELDS, 0), "cost_usd": 0.0}


def summed(usages: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """The sum of answers' usage (PROTOCOL §8 shape); answers without one count nothing."""
    total = empty_usage()
    for usage in usages:
        for name in USAGE_FIELDS:
            total[name] += int((usage or {}).get(name) or 0)
        total["cost_usd"] += float((usage or {}).get("cost_usd") or 0)
    total["cost_usd"] = round(total["cost_usd"], 6)
    return total


def session_usage(messages: Iterable[Message]) -> dict[str, Any]:
    """What every answer of the session cost, on every branch."""
    return summed(message.usage for message in messages if message.role == "assistant")


def today() -> date:
    return timezone.now().date()  # UTC: the server's time zone is UTC


def spent_today(user_id: int) -> float:
    return UsageDay.objects.filter(user_id=user_id, day=today()).values_list("cost_usd", flat=True).first() or 0.0


def budget_left(user_id: int) -> float | None:
    """What the user may still spend today, in US dollars; None without a budget."""
    budget = copilot_setting("USER_DAILY_BUDGET_USD")
    if budget is None:
        return None
    return max(0.0, budget - spent_today(user_id))


def day_dict(row: UsageDay | None, day: date) -> dict[str, Any]:
    usage = empty_usage() if row is None else {**{name: getattr(row, name) for name in USAGE_FIELDS},
                                                "cost_usd": round(row.cost_usd, 6)}
    return {"date": day.isoformat(), "turns": row.turns if row else 0, **usage}


def user_usage(user_id: int) -> dict[str, Any]:
    """The user's usage: today's totals, the budget and what is left of it, and the last HISTORY_DAYS days."""
    rows = list(UsageDay.objects.filter(user_id=user_id, day__gt=today() - timedelta(days=HISTORY_DAYS)))
    todays = next((row for row in rows if row.day == today()), None)
    budget = copilot_setting("USER_DAILY_BUDGET_USD")
    return {
        "today": day_dict(todays, today()),
        "budget_usd": budget,
        "remaining_usd": None if budget is None else round(max(0.0, budget - (todays.cost_usd if todays else 0)), 6),
        "days": [day_dict(row, row.day) for row in rows],
    }

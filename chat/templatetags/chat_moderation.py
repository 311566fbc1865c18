"""Template tags of the admin's moderation summary (the counts on the admin index)."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from chat.selectors import moderation_counts

register = template.Library()


@register.simple_tag(takes_context=True)
def moderation_summary(context: template.Context) -> dict[str, Any] | None:
    """What needs a staff member now, each count linked to its filtered list; None for who may not see it."""
    user = context["request"].user
    can_view_turns = user.has_perm("chat.view_turn") or user.has_perm("chat.change_turn")
    can_view_calls = user.has_perm("chat.view_toolcall") or user.has_perm("chat.change_toolcall")
    if not (can_view_turns or can_view_calls):
        return None
    counts = moderation_counts()
    turns, calls = reverse("admin:chat_turn_changelist"), reverse("admin:chat_toolcall_changelist")
    rows = []
    if can_view_turns:
        rows.append({"label": "Stale turns", "count": counts.stale_turns, "url": f"{turns}?attention=stale",
                     "help": "running, but no heartbeat for longer than STALE_TURN_SECONDS"})
    if can_view_calls:
        rows += [
            {"label": "Dangling tool calls", "count": counts.dangling_tool_calls, "url": f"{calls}?attention=dangling",
             "help": "no output, and their turn is no longer running"},
            {"label": "Stuck tool calls", "count": counts.stuck_tool_calls, "url": f"{calls}?attention=stuck",
             "help": "running longer than STUCK_TOOL_CALL_SECONDS, or in a stale turn"},
        ]
    can_reap = user.has_perm("chat.change_turn") and counts.stale_turns > 0
    return {"rows": rows, "reap_url": reverse("admin:chat_turn_reap") if can_reap else None}

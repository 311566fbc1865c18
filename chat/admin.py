"""Django admin for conversations: staff read sessions and find and resolve stale turns and stuck tool calls.

Thin: rows are written by the engine only, so every page is read-only; the moderation actions call
chat.actions.moderation and the engine's stop and reaper, and each is audited in the admin log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import update_wrapper
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme

from chat.actions.moderation import STAFF_INTERRUPTED, InterruptedCall, interrupt_tool_call, open_tool_uses
from chat.engine.control import tell_the_turn
from chat.engine.reaper import reap_stale_turns
from chat.engine.registry import running_turns, stop_turn
from chat.errors import NothingRunning
from chat.models import ChatSession, Message, ToolCall, ToolCallStatus, Turn, TurnStatus
from chat.selectors import dangling_tool_calls, session_snapshot, stale_since, stale_turns, stuck_tool_calls

BADGE_STATUSES = {"running", "completed", "stopped", "failed", "interrupted"}  # coloured by static/chat/admin.css


def duration_text(start: datetime | None, end: datetime | None) -> str:
    """"4.2 s", "3 min 5 s", "2 h 4 min"; up to now while it still runs."""
    if start is None:
        return "–"
    seconds = max(0.0, ((end or timezone.now()) - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def moment(value: datetime) -> str:
    """To the second, in the site's time zone: heartbeats and stale turns are a matter of seconds."""
    return date_format(timezone.localtime(value), "Y-m-d H:i:s")


def summary(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False)  # spaced, so a narrow column can wrap it
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty_json(value: Any) -> str:
    return format_html('<pre class="json">{}</pre>', json.dumps(value, ensure_ascii=False, indent=2))


def status_badge(status: str) -> str:
    """The status in its colour (a class: the admin's pages allow no inline styles)."""
    colour = f" status-{status}" if status in BADGE_STATUSES else ""
    return format_html('<strong class="status-badge{}">{}</strong>', colour, status)


def turn_status_text(turn: Turn) -> str:
    stale = turn.is_running and turn.heartbeat_at < stale_since()
    return f"{turn.status} (stale)" if stale else turn.status


def change_link(model: type, pk: Any, text: str) -> str:
    return format_html('<a href="{}">{}</a>', reverse(f"admin:chat_{model._meta.model_name}_change", args=[pk]), text)


def session_with_owner(session: ChatSession) -> str:
    """The session's title linked to its page, and its owner (the row's owner must be selected with it)."""
    return format_html("{} ({})", change_link(ChatSession, session.pk, session.title), session.owner.get_username())


def redirect_back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    """Back to the page the staff member acted from (a filtered list keeps its filters)."""
    referer = request.META.get("HTTP_REFERER", "")
    safe = url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure())
    return HttpResponseRedirect(referer if referer and safe else fallback)


class ModerationAdmin(admin.ModelAdmin):
    """Read-only pages; the change permission unlocks the moderation actions, not editing."""

    list_per_page = 50
    show_full_result_count = False  # a filtered page of a big table needs no second COUNT(*) of all rows

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # With an object: the change form, which stays view-only. Without: actions and moderation views.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def moderation_view(self, view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        """A view that acts: staff only (others go to the login), POST only (405), the change permission (403)."""
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            if not self.has_change_permission(request):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return self.admin_site.admin_view(update_wrapper(checked, view))

    def stop(self, request: HttpRequest, turn: Turn, audit_on: Any) -> bool:
        """Stop the turn in whichever process runs it; audit it on `audit_on`. False when it no longer ran."""
        try:
            async_to_sync(stop_turn)(session=turn.session)
        except NothingRunning:
            return False
        self.log_change(request, audit_on, f"Stopped turn {turn.id} (staff).")
        return True


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MessageInline(ReadOnlyInline):
    model = Message
    fields = readonly_fields = ["position", "role", "text_preview", "tool_call_count", "created_at"]
    ordering = ["position"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).annotate(tool_call_count=Count("tool_calls"))

    @admin.display(description="text")
    def text_preview(self, message: Message) -> str:
        text = message.text
        return text if len(text) <= 300 else text[:299] + "…"

    @admin.display(description="tool calls")
    def tool_call_count(self, message: Message) -> int:
        return message.tool_call_count


class ToolCallInline(ReadOnlyInline):
    model = ToolCall
    fields = readonly_fields = ["name", "input_summary", "status", "duration", "error_text"]
    ordering = ["part_index"]
    show_change_link = True

    @admin.display(description="input")
    def input_summary(self, tool_call: ToolCall) -> str:
        return summary(tool_call.input)

    @admin.display(description="duration")
    def duration(self, tool_call: ToolCall) -> str:
        return duration_text(tool_call.started_at, tool_call.finished_at)


class TurnAttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("stale", "Stale (running, no heartbeat)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Turn]) -> QuerySet[Turn]:
        return queryset.filter(pk__in=stale_turns().values("pk")) if self.value() == "stale" else queryset


class ToolCallAttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("dangling", "Dangling (no output, turn ended)"), ("stuck", "Stuck (running too long, or stale turn)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ToolCall]) -> QuerySet[ToolCall]:
        found = {"dangling": dangling_tool_calls, "stuck": stuck_tool_calls}.get(self.value() or "")
        return queryset.filter(pk__in=found().values("pk")) if found else queryset


@admin.register(ChatSession)
class ChatSessionAdmin(ModerationAdmin):
    list_display = ["title", "owner", "message_count", "last_activity", "running_turn", "transcript"]
    list_select_related = ["owner"]
    search_fields = ["id", "title", "owner__username", "owner__email"]
    ordering = ["-updated_at"]
    fields = readonly_fields = ["id", "owner", "title", "created_at", "last_activity", "message_count", "running_turn",
                                "transcript", "sdk_session_id", "tool_calls"]
    inlines = [MessageInline]
    actions = ["stop_running_turns"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChatSession]:
        turns = Turn.objects.filter(session=OuterRef("pk"))
        latest_turn_activity = turns.order_by("-started_at").values(
            activity=Coalesce("finished_at", "heartbeat_at"))[:1]
        message_count = (Message.objects.filter(session=OuterRef("pk")).order_by().values("session")
                         .annotate(n=Count("pk")).values("n"))
        return super().get_queryset(request).annotate(
            message_count=Coalesce(Subquery(message_count), 0),
            last_activity=Greatest("updated_at", Coalesce(Subquery(latest_turn_activity), "updated_at")),
            running_turn_id=Subquery(turns.filter(status=TurnStatus.RUNNING).values("pk")[:1]),
        )

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, session: ChatSession) -> int:
        return session.message_count

    @admin.display(description="last activity", ordering="last_activity")
    def last_activity(self, session: ChatSession) -> str:
        return moment(session.last_activity)

    @admin.display(description="running turn")
    def running_turn(self, session: ChatSession) -> str:
        if session.running_turn_id is None:
            return "–"
        return change_link(Turn, session.running_turn_id, f"{str(session.running_turn_id)[:8]} (running)")

    @admin.display(description="transcript")
    def transcript(self, session: ChatSession) -> str:
        return format_html('<a href="{}">read</a>', reverse("admin:chat_chatsession_transcript", args=[session.pk]))

    @admin.display(description="tool calls")
    def tool_calls(self, session: ChatSession) -> str:
        calls = ToolCall.objects.filter(turn__session=session).select_related("turn").order_by("started_at", "pk")
        rows = format_html_join("", "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (change_link(ToolCall, call.pk, call.name), summary(call.input, 60), status_badge(call.status),
             duration_text(call.started_at, call.finished_at), change_link(Turn, call.turn_id, call.turn.status))
            for call in calls))
        if not rows:
            return "none"
        return format_html("<table><thead><tr><th>name</th><th>input</th><th>status</th><th>duration</th>"
                           "<th>turn</th></tr></thead><tbody>{}</tbody></table>", rows)

    @admin.action(description="Stop the running turn", permissions=["change"])
    def stop_running_turns(self, request: HttpRequest, queryset: QuerySet[ChatSession]) -> None:
        turns = Turn.objects.filter(session__in=queryset, status=TurnStatus.RUNNING).select_related("session")
        stopped = sum(self.stop(request, turn, turn.session) for turn in turns)
        self.message_user(request, f"Asked {stopped} running turn(s) to stop." if stopped else "No turn was running.",
                          messages.SUCCESS if stopped else messages.WARNING)

    def get_urls(self) -> list:
        return [path("<path:object_id>/transcript/", self.admin_site.admin_view(self.transcript_view),
                     name="chat_chatsession_transcript"), *super().get_urls()]

    def transcript_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The session as its owner reads it: messages in order, tool calls as cards, each turn's outcome."""
        session = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_view_permission(request, session):
            raise PermissionDenied
        snapshot = session_snapshot(session)
        turns = {str(turn.assistant_message_id): turn for turn in Turn.objects.filter(session=session)}
        call_pks = dict(ToolCall.objects.filter(turn__session=session).values_list("tool_use_id", "pk"))
        entries = []
        for message in snapshot["messages"]:
            turn = turns.get(message["id"]) if message["role"] == "assistant" else None
            for part in message["parts"]:
                if part["type"] == "dynamic-tool":
                    part["brief"] = summary(part.get("input"), 70)
                    part["input_json"] = json.dumps(part.get("input"), ensure_ascii=False, indent=2)
                    part["output_json"] = json.dumps(part.get("output"), ensure_ascii=False, indent=2)
                    part["pk"] = call_pks.get(part["toolCallId"])
            entries.append({**message, "turn": turn, "created": datetime.fromisoformat(message["created_at"]),
                            "duration": duration_text(turn.started_at, turn.finished_at) if turn else ""})
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "original": session,
            "title": f"Transcript: {session.title}", "session": session, "entries": entries,
            "open_tool_uses": [use.tool_use_id for use in open_tool_uses(session)],
        }
        return TemplateResponse(request, "admin/chat/chatsession/transcript.html", context)


@admin.register(Turn)
class TurnAdmin(ModerationAdmin):
    list_display = ["status_badge", "session_link", "started", "last_heartbeat", "duration", "process",
                    "tool_call_count"]
    list_filter = [TurnAttentionFilter, "status"]
    list_select_related = ["session__owner"]
    search_fields = ["id", "session__id", "session__owner__username", "process"]
    ordering = ["-started_at"]
    fields = readonly_fields = ["id", "session_link", "status_badge", "error", "started", "last_heartbeat",
                                "finished_at", "duration", "process", "prompt", "answer", "start_seq", "seq"]
    inlines = [ToolCallInline]
    actions = ["stop_turns"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Turn]:
        return super().get_queryset(request).select_related("session__owner").annotate(
            tool_call_count=Count("tool_calls"))

    @admin.display(description="session (owner)", ordering="session__title")
    def session_link(self, turn: Turn) -> str:
        return session_with_owner(turn.session)

    @admin.display(description="status", ordering="status")
    def status_badge(self, turn: Turn) -> str:
        return status_badge(turn_status_text(turn))

    @admin.display(description="started", ordering="started_at")
    def started(self, turn: Turn) -> str:
        return moment(turn.started_at)

    @admin.display(description="last heartbeat", ordering="heartbeat_at")
    def last_heartbeat(self, turn: Turn) -> str:
        return f"{duration_text(turn.heartbeat_at, None)} ago"

    @admin.display(description="duration")
    def duration(self, turn: Turn) -> str:
        return duration_text(turn.started_at, turn.finished_at)

    @admin.display(description="calls", ordering="tool_call_count")
    def tool_call_count(self, turn: Turn) -> int:
        return turn.tool_call_count

    @admin.display(description="prompt")
    def prompt(self, turn: Turn) -> str:
        return turn.user_message.text

    @admin.display(description="answer")
    def answer(self, turn: Turn) -> str:
        return turn.assistant_message.text

    @admin.action(description="Stop the selected running turns", permissions=["change"])
    def stop_turns(self, request: HttpRequest, queryset: QuerySet[Turn]) -> None:
        stopped = sum(self.stop(request, turn, turn) for turn in queryset.filter(status=TurnStatus.RUNNING))
        self.message_user(request, f"Asked {stopped} running turn(s) to stop." if stopped else "No turn was running.",
                          messages.SUCCESS if stopped else messages.WARNING)

    def get_urls(self) -> list:
        return [
            path("reap/", self.moderation_view(self.reap_view), name="chat_turn_reap"),
            path("<path:object_id>/stop/", self.moderation_view(self.stop_view), name="chat_turn_stop"),
            *super().get_urls(),
        ]

    def reap_view(self, request: HttpRequest) -> HttpResponse:
        """End every stale turn as interrupted, now rather than at the reaper's next round."""
        reaped = async_to_sync(reap_stale_turns)(running_here=running_turns.session_ids())
        for turn in Turn.objects.filter(pk__in=reaped):
            self.log_change(request, turn, "Reaped as stale (staff): ended as interrupted.")
        self.message_user(request, f"Reaped {len(reaped)} stale turn(s)." if reaped else "No turn was stale.",
                          messages.SUCCESS if reaped else messages.WARNING)
        return redirect_back(request, reverse("admin:chat_turn_changelist"))

    def stop_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        turn = get_object_or_404(Turn.objects.select_related("session"), pk=object_id)
        if self.stop(request, turn, turn):
            self.message_user(request, f"Asked turn {str(turn.id)[:8]} to stop.", messages.SUCCESS)
        else:
            self.message_user(request, "That turn is no longer running.", messages.WARNING)
        return redirect_back(request, reverse("admin:chat_turn_change", args=[turn.pk]))


@admin.register(ToolCall)
class ToolCallAdmin(ModerationAdmin):
    list_display = ["tool_name", "input_summary", "status_badge", "duration", "turn_status", "session_link"]
    list_filter = [ToolCallAttentionFilter, "status"]
    list_select_related = ["turn__session__owner"]
    search_fields = ["name", "tool_use_id", "turn__session__id", "turn__session__owner__username"]
    ordering = ["-started_at"]
    fields = readonly_fields = ["tool_use_id", "name", "status_badge", "session_link", "turn_link",
                                "started_at", "finished_at", "duration", "input_json", "output_json", "error_text",
                                "input_seq", "output_seq"]
    actions = ["mark_interrupted"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ToolCall]:
        return super().get_queryset(request).select_related("turn__session__owner")

    def get_list_display(self, request: HttpRequest) -> list[str]:
        # Whoever may act gets each open call's one-click "Mark interrupted", next to its status.
        if not self.has_change_permission(request):
            return self.list_display
        return ["status_and_resolve" if name == "status_badge" else name for name in self.list_display]

    @admin.display(description="name", ordering="name")
    def tool_name(self, tool_call: ToolCall) -> str:
        return format_html('<span title="{}">{}</span>', tool_call.name, tool_call.name.removeprefix("mcp__copilot__"))

    @admin.display(description="input")
    def input_summary(self, tool_call: ToolCall) -> str:
        return format_html("<code>{}</code>", summary(tool_call.input, 60))

    @admin.display(description="status", ordering="status")
    def status_badge(self, tool_call: ToolCall) -> str:
        return status_badge(tool_call.status)

    @admin.display(description="duration")
    def duration(self, tool_call: ToolCall) -> str:
        return duration_text(tool_call.started_at, tool_call.finished_at)

    @admin.display(description="turn", ordering="turn__status")
    def turn_status(self, tool_call: ToolCall) -> str:
        return change_link(Turn, tool_call.turn_id, turn_status_text(tool_call.turn))

    turn_link = turn_status

    @admin.display(description="session (owner)", ordering="turn__session__title")
    def session_link(self, tool_call: ToolCall) -> str:
        return session_with_owner(tool_call.turn.session)

    @admin.display(description="input")
    def input_json(self, tool_call: ToolCall) -> str:
        return pretty_json(tool_call.input)

    @admin.display(description="output")
    def output_json(self, tool_call: ToolCall) -> str:
        return pretty_json(tool_call.output) if tool_call.output is not None else "–"

    @admin.display(description="status", ordering="status")
    def status_and_resolve(self, tool_call: ToolCall) -> str:
        if tool_call.status != ToolCallStatus.RUNNING:
            return status_badge(tool_call.status)
        # A submit button of the changelist form (forms cannot nest): it carries the form's CSRF token.
        return format_html('{}<br><button type="submit" class="button" formaction="{}">Mark interrupted</button>',
                           status_badge(tool_call.status),
                           reverse("admin:chat_toolcall_interrupt", args=[tool_call.pk]))

    def interrupt(self, request: HttpRequest, tool_call: ToolCall) -> InterruptedCall:
        outcome = async_to_sync(interrupt_tool_call)(tool_call=tool_call)
        # In a live turn the copilot's own tool really stops, and the model gets the interruption as its result
        # (a tool the CLI runs itself cannot be stopped alone: only the chat is told).
        cancelled = (outcome.ended and tool_call.name.startswith("mcp__")
                     and tool_call.turn.status == TurnStatus.RUNNING)
        if cancelled:
            async_to_sync(tell_the_turn)(str(tool_call.turn.session_id), {
                "type": "turn.cancel_tool", "turn_id": str(tool_call.turn_id), "tool_call_id": tool_call.tool_use_id,
                "reason": STAFF_INTERRUPTED})
        done = [text for happened, text in [(outcome.ended, "marked interrupted, watchers told"),
                                            (cancelled, "its work stopped in the live turn"),
                                            (outcome.transcript_repaired, "SDK transcript given its tool_result")]
                if happened]
        if done:
            self.log_change(request, tool_call, f"Staff interrupt: {'; '.join(done)}.")
        return outcome

    @admin.action(description="Mark interrupted (error output, transcript repaired)", permissions=["change"])
    def mark_interrupted(self, request: HttpRequest, queryset: QuerySet[ToolCall]) -> None:
        outcomes = [self.interrupt(request, call) for call in queryset.select_related("turn")]
        ended = sum(outcome.ended for outcome in outcomes)
        repaired = sum(outcome.transcript_repaired for outcome in outcomes)
        self.message_user(request, f"Marked {ended} tool call(s) interrupted; repaired the SDK transcript for "
                                   f"{repaired}; {len(outcomes) - ended} had already ended.",
                          messages.SUCCESS if ended or repaired else messages.WARNING)

    def get_urls(self) -> list:
        return [path("<path:object_id>/interrupt/", self.moderation_view(self.interrupt_view),
                     name="chat_toolcall_interrupt"), *super().get_urls()]

    def interrupt_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The one-click "Mark interrupted" of one call, from its row or its page."""
        tool_call = get_object_or_404(ToolCall.objects.select_related("turn"), pk=object_id)
        outcome = self.interrupt(request, tool_call)
        name = f"{tool_call.name.removeprefix('mcp__copilot__')} {tool_call.tool_use_id}"
        repaired = " and its SDK transcript repaired" if outcome.transcript_repaired else ""
        if outcome.ended:
            self.message_user(request, f"{name} marked interrupted{repaired}.", messages.SUCCESS)
        else:
            self.message_user(request, f"{name} had already ended{repaired}.", messages.WARNING)
        return redirect_back(request, reverse("admin:chat_toolcall_changelist"))


@admin.register(Message)
class MessageAdmin(ModerationAdmin):
    list_display = ["session", "position", "role", "created_at"]
    list_select_related = ["session"]
    search_fields = ["session__id", "session__owner__username"]
    ordering = ["-created_at"]

"""Reads: fetching what a user may see, and the hydrated session snapshot."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from chat.branches import MessageTree
from chat.events.chunks import INTERRUPTED
from chat.events.durable_seq import last_durable_seq
from chat.models import Approval, ChatSession, Message, SessionNotice, ToolCall, ToolCallStatus, Turn, TurnStatus
from chat.usage import session_usage
from core.conf import copilot_setting
from core.errors import NotFound


def sessions_of(user: AbstractBaseUser) -> QuerySet[ChatSession]:
    return ChatSession.objects.filter(owner=user)


def access_session(*, user: AbstractBaseUser, session_id: Any) -> ChatSession:
    """The user's own session, or NotFound (another user's session is not revealed to exist)."""
    try:
        session_uuid = uuid.UUID(str(session_id))
    except (TypeError, ValueError, AttributeError):
        raise NotFound("no such session") from None
    if not getattr(user, "is_authenticated", False):
        raise NotFound("no such session")
    session = sessions_of(user).filter(pk=session_uuid).first()
    if session is None:
        raise NotFound("no such session")
    return session


def last_ended_turn_id(session_id: Any, *, before: Turn | None = None) -> str | None:
    """The id of the session's newest turn that has ended (other than `before`): the turn whose end the
    session's conversation continues from."""
    turns = Turn.objects.filter(session_id=session_id, finished_at__isnull=False)
    if before is not None:
        turns = turns.exclude(pk=before.pk)
    newest = turns.order_by("-finished_at").values_list("pk", flat=True).first()
    return str(newest) if newest else None


def running_turn(session_id: Any) -> Turn | None:
    return Turn.objects.filter(session_id=session_id, status=TurnStatus.RUNNING).first()


def tool_part(tool_call: ToolCall, *, turn_running: bool) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "dynamic-tool", "toolName": tool_call.name, "toolCallId": tool_call.tool_use_id,
                            "input": tool_call.input, "startedAt": tool_call.started_at.isoformat()}
    if tool_call.status == ToolCallStatus.COMPLETED:
        part.update(state="output-available", output=tool_call.output)
    elif tool_call.status == ToolCallStatus.RUNNING and turn_running:
        part.update(state="input-available")
    elif tool_call.status == ToolCallStatus.RUNNING:
        part.update(state="output-error", errorText=INTERRUPTED)  # its turn is gone: never shown as pending
    else:
        part.update(state="output-error", errorText=tool_call.error_text or INTERRUPTED)
    return part


def message_dict(message: Message, tool_calls: list[ToolCall], *, turn: Turn | None = None,
                 branch: dict[str, Any] | None = None) -> dict[str, Any]:
    """An AI SDK UIMessage; an assistant message also says how its turn ended (`turn_status`, `error`) and what it
    cost (`usage`); with `branch`, where it sits among its versions (PROTOCOL §8)."""
    turn_running = turn is not None and turn.status == TurnStatus.RUNNING
    indexed: list[tuple[int, dict[str, Any]]] = [
        (part.get("index", 0), {"type": part["type"], "text": part.get("text", "")}) for part in message.parts
    ]
    indexed += [(call.part_index, tool_part(call, turn_running=turn_running)) for call in tool_calls]
    indexed.sort(key=lambda item: item[0])
    result = {"id": str(message.id), "role": message.role, "parts": [part for _, part in indexed],
              "created_at": message.created_at.isoformat()}
    if turn is not None:
        result.update(turn_status=turn.status, error=turn.error, usage=message.usage)
    if branch is not None:
        result["branch"] = branch
    return result


def turn_dict(turn: Turn) -> dict[str, Any]:
    return {"id": str(turn.id), "status": turn.status, "started_at": turn.started_at.isoformat(),
            "finished_at": turn.finished_at.isoformat() if turn.finished_at else None,
            "user_message_id": str(turn.user_message_id), "assistant_message_id": str(turn.assistant_message_id),
            "error": turn.error}


def turn_detail_dict(turn: Turn) -> dict[str, Any]:
    calls = ToolCall.objects.filter(turn=turn).order_by("part_index")
    return {**turn_dict(turn), "tool_calls": [
        {"toolCallId": call.tool_use_id, "toolName": call.name, "status": call.status, "input": call.input,
         "output": call.output, "errorText": call.error_text, "started_at": call.started_at.isoformat(),
         "finished_at": call.finished_at.isoformat() if call.finished_at else None}
        for call in calls]}


def session_dict(session: ChatSession) -> dict[str, Any]:
    return {"id": str(session.id), "title": session.title, "created_at": session.created_at.isoformat(),
            "updated_at": session.updated_at.isoformat(), "approval_mode": session.approval_mode,
            "model": effective_model(session)}


def pending_approval_dict(approval: Approval) -> dict[str, Any]:
    """As its data-approval event shows it (PROTOCOL §7)."""
    return {"approval_id": str(approval.id), "toolCallId": approval.tool_use_id, "toolName": approval.tool_name,
            "input": approval.input, "expires_at": approval.expires_at.isoformat().replace("+00:00", "Z")}


def default_model() -> str:
    """The model of MODELS marked default (MODEL, unless the setting says otherwise)."""
    return next((model["id"] for model in copilot_setting("MODELS") if model.get("default")), copilot_setting("MODEL"))


def effective_model(session: ChatSession) -> str:
    """The model the session's next turn runs with: its own, or the default."""
    return session.model or default_model()


# Notices that change the session itself rather than report on work: the snapshot shows their effect (the title).
NOT_REPORTS = ("title",)


def session_notices(session_id: Any) -> list[dict[str, Any]]:
    """The reports a session has heard (events outside turns about background work), in seq order, each as the
    event that carried it."""
    return [{"seq": notice.seq, "turn_id": None, "chunk": {"type": notice.chunk_type, "data": notice.payload},
             "created_at": notice.created_at.isoformat()}
            for notice in SessionNotice.objects.filter(session_id=session_id, seq__isnull=False)
            .exclude(kind__in=NOT_REPORTS).order_by("seq")]


def session_snapshot(session: ChatSession) -> dict[str, Any]:
    """The session as the client should show it, with `last_seq`: the newest event it includes. `messages` are
    its active branch, each with its `branch`; `usage` sums every answer, on every branch.

    Read in one repeatable snapshot of the database, so `last_seq` matches exactly what was read.
    """
    starts_transaction = not connection.in_atomic_block
    with transaction.atomic():
        if starts_transaction and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        session = ChatSession.objects.filter(pk=session.pk).first() or session  # as of this snapshot
        messages = list(Message.objects.filter(session=session).order_by("position"))
        turns = list(Turn.objects.filter(session=session))
        tool_calls = list(ToolCall.objects.filter(turn__session=session).order_by("part_index"))
        waiting = list(Approval.objects.filter(turn__session=session, turn__status=TurnStatus.RUNNING, decision="")
                       .order_by("requested_at"))
        notices = session_notices(session.id)
        last_seq = last_durable_seq(session.id)
    running_turn_ids = {turn.id for turn in turns if turn.status == TurnStatus.RUNNING}
    turn_of_message = {turn.assistant_message_id: turn for turn in turns}
    calls_by_message: dict[uuid.UUID, list[ToolCall]] = {}
    for call in tool_calls:
        calls_by_message.setdefault(call.message_id, []).append(call)
    active = next((turn for turn in turns if turn.id in running_turn_ids), None)
    queued = sorted((turn for turn in turns if turn.status == TurnStatus.QUEUED), key=lambda turn: turn.queued_at)
    not_started = {message_id for turn in queued for message_id in (turn.user_message_id, turn.assistant_message_id)}
    text_of = {message.id: message.text for message in messages}
    tree = MessageTree(messages)
    return {
        **session_dict(session),
        "messages": [
            message_dict(message, calls_by_message.get(message.id, []), turn=turn_of_message.get(message.id),
                         branch=tree.branch_dict(message))
            for message in tree.active_branch(session) if message.id not in not_started  # queued: joins on start
        ],
        "active_leaf": str(session.active_leaf_id) if session.active_leaf_id else None,
        "usage": session_usage(messages),
        "active_turn": {**turn_dict(active), "pending_approvals": [pending_approval_dict(a) for a in waiting]}
        if active else None,
        "queued": [{"turn_id": str(turn.id), "message_id": str(turn.user_message_id),
                    "text": text_of.get(turn.user_message_id, "")} for turn in queued],
        "reports": notices,
        "last_seq": last_seq,
    }


# --- what needs a staff member: stale turns, dangling and stuck tool calls ---

def stale_since() -> datetime:
    """A running turn whose heartbeat is older than this lost its process (the reaper's rule)."""
    return timezone.now() - timedelta(seconds=copilot_setting("STALE_TURN_SECONDS"))


def stale_turns() -> QuerySet[Turn]:
    """Turns still marked running whose heartbeat is older than STALE_TURN_SECONDS."""
    return Turn.objects.filter(status=TurnStatus.RUNNING, heartbeat_at__lt=stale_since())


def dangling_tool_calls() -> QuerySet[ToolCall]:
    """Calls with neither output nor error whose turn is no longer running: nothing will ever end them."""
    return ToolCall.objects.filter(status=ToolCallStatus.RUNNING).exclude(turn__status=TurnStatus.RUNNING)


def stuck_tool_calls() -> QuerySet[ToolCall]:
    """Open calls of a running turn that run longer than STUCK_TOOL_CALL_SECONDS, or whose turn is stale."""
    running_since = timezone.now() - timedelta(seconds=copilot_setting("STUCK_TOOL_CALL_SECONDS"))
    return ToolCall.objects.filter(status=ToolCallStatus.RUNNING, turn__status=TurnStatus.RUNNING).filter(
        Q(started_at__lt=running_since) | Q(turn__heartbeat_at__lt=stale_since()))


@dataclass(frozen=True)
class ModerationCounts:
    stale_turns: int
    dangling_tool_calls: int
    stuck_tool_calls: int


def moderation_counts() -> ModerationCounts:
    return ModerationCounts(stale_turns=stale_turns().count(), dangling_tool_calls=dangling_tool_calls().count(),
                            stuck_tool_calls=stuck_tool_calls().count())

"""Writes of a turn's life: start, tool calls, text, finish. Each hot-path write is one statement."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from chat.errors import BadMessage, QueueFull, TurnRunning, TurnStarted
from chat.models import ChatSession, Message, MessageRole, ToolCall, ToolCallStatus, Turn, TurnStatus
from core.conf import copilot_setting
from core.process import PROCESS_NAME


@dataclass(frozen=True)
class StartedTurn:
    turn: Turn
    created: bool  # False: the client_message_id was seen before; nothing new started

    @property
    def queued(self) -> bool:
        return self.turn.status == TurnStatus.QUEUED


def check_message_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise BadMessage("text: a non-empty message is required")
    limit = copilot_setting("MAX_MESSAGE_CHARS")
    if len(text) > limit:
        raise BadMessage(f"text: at most {limit:,} characters ({len(text):,} given)")
    return text


def check_client_message_id(value: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise BadMessage("client_message_id: a UUID is required") from None


def _existing_turn(session: ChatSession, client_message_id: uuid.UUID) -> Turn | None:
    return (Turn.objects.select_related("user_message", "assistant_message")
            .filter(session=session, user_message__client_message_id=client_message_id).first())


def do_start_turn(*, session: ChatSession, text: str, client_message_id: uuid.UUID, queue: bool = False) -> StartedTurn:
    """Save the user's message, an empty assistant message and a running turn, atomically; with `queue`, while
    another turn runs, a queued turn instead (it starts when those before it have ended).

    Idempotent on `client_message_id`, queued sends too. Raises TurnRunning while another turn of the session
    runs (without `queue`), QueueFull past MAX_QUEUED_TURNS. Locks the session row: positions and the queue are
    read and written by one starter at a time, and the partial unique index on running turns holds between
    concurrent callers too. The turn is unclaimed: whoever runs it claims it (`do_claim_turn`).
    """
    text = check_message_text(text)
    existing = _existing_turn(session, client_message_id)
    if existing is not None:
        return StartedTurn(existing, created=False)
    try:
        with transaction.atomic():
            ChatSession.objects.select_for_update().filter(pk=session.pk).first()
            busy = Turn.objects.filter(session=session, status__in=[TurnStatus.RUNNING, TurnStatus.QUEUED])
            queued = busy.exists() and queue
            if busy.exists() and not queue:
                raise TurnRunning("a turn is already running in this session")
            limit = copilot_setting("MAX_QUEUED_TURNS")
            if queued and busy.filter(status=TurnStatus.QUEUED).count() >= limit:
                raise QueueFull(f"at most {limit} messages may wait for their turn; remove one or wait")
            last = Message.objects.filter(session=session).aggregate(last=Max("position"))["last"] or 0
            user_message = Message.objects.create(
                session=session, position=last + 1, role=MessageRole.USER,
                parts=[{"type": "text", "index": 0, "text": text}], client_message_id=client_message_id)
            assistant_message = Message.objects.create(session=session, position=last + 2, role=MessageRole.ASSISTANT)
            turn = Turn.objects.create(session=session, user_message=user_message, assistant_message=assistant_message,
                                       status=TurnStatus.QUEUED if queued else TurnStatus.RUNNING,
                                       queued_at=timezone.now() if queued else None)
            ChatSession.objects.filter(pk=session.pk).update(updated_at=timezone.now())
    except IntegrityError:
        existing = _existing_turn(session, client_message_id)
        if existing is not None:
            return StartedTurn(existing, created=False)
        raise TurnRunning("a turn is already running in this session") from None
    return StartedTurn(turn, created=True)


def do_claim_turn(*, turn_id: uuid.UUID) -> bool:
    """This process runs the turn (one UPDATE); False when another process claimed it first."""
    return Turn.objects.filter(pk=turn_id, process="").update(process=PROCESS_NAME) == 1


def do_start_next_queued_turn(*, session_id: uuid.UUID) -> Turn | None:
    """The oldest queued turn of the session, now running and claimed by this process; None when none waits or a
    turn runs. Its heartbeat and start time are now."""
    with transaction.atomic():
        ChatSession.objects.select_for_update().filter(pk=session_id).first()
        if Turn.objects.filter(session_id=session_id, status=TurnStatus.RUNNING).exists():
            return None
        turn = Turn.objects.filter(session_id=session_id, status=TurnStatus.QUEUED).order_by("queued_at").first()
        if turn is None:
            return None
        now = timezone.now()
        Turn.objects.filter(pk=turn.pk).update(status=TurnStatus.RUNNING, started_at=now, heartbeat_at=now,
                                               process=PROCESS_NAME)
    return Turn.objects.select_related("user_message").get(pk=turn.pk)


def do_remove_queued_turn(*, turn: Turn) -> None:
    """Remove a turn that has not started, with its messages. Raises TurnStarted once it has."""
    with transaction.atomic():
        ChatSession.objects.select_for_update().filter(pk=turn.session_id).first()
        if not Turn.objects.filter(pk=turn.pk, status=TurnStatus.QUEUED).exists():
            raise TurnStarted("this turn has started: stop it instead")
        Message.objects.filter(pk__in=[turn.user_message_id, turn.assistant_message_id]).delete()


def do_record_tool_input(*, turn_id: uuid.UUID, message_id: uuid.UUID, tool_use_id: str, name: str,
                         tool_input: Any, part_index: int, seq: int) -> bool:
    """Insert the call (one INSERT, no transaction around it). False when the call is already recorded."""
    try:
        ToolCall.objects.create(turn_id=turn_id, message_id=message_id, tool_use_id=tool_use_id, name=name,
                                input=tool_input, part_index=part_index, input_seq=seq)
    except IntegrityError:
        return False
    return True


def do_record_tool_output(*, turn_id: uuid.UUID, tool_use_id: str, seq: int, output: Any = None,
                          error_text: str | None = None, status: str = ToolCallStatus.COMPLETED) -> bool:
    """End a running call (one UPDATE). False when it had already ended: a late or repeated output."""
    changed = ToolCall.objects.filter(turn_id=turn_id, tool_use_id=tool_use_id, status=ToolCallStatus.RUNNING).update(
        status=status, output=output, error_text=error_text or "", finished_at=timezone.now(), output_seq=seq)
    return changed == 1


def do_save_message_parts(*, message_id: uuid.UUID, parts: list[dict[str, Any]], seq: int) -> bool:
    Message.objects.filter(pk=message_id).update(parts=parts, seq=seq)
    return True


def do_record_turn_start(*, turn_id: uuid.UUID, seq: int) -> bool:
    Turn.objects.filter(pk=turn_id).update(start_seq=seq)
    return True


def do_record_sdk_session(*, session_id: uuid.UUID, sdk_session_id: str) -> None:
    """Remember the SDK conversation as soon as it exists, so even a turn whose process dies continues it."""
    ChatSession.objects.filter(pk=session_id).update(sdk_session_id=sdk_session_id)


def do_touch_turn(*, turn_id: uuid.UUID) -> None:
    Turn.objects.filter(pk=turn_id, status=TurnStatus.RUNNING).update(heartbeat_at=timezone.now())


@dataclass(frozen=True)
class TurnFigures:
    """What a turn's end records besides its status, for the dashboard and the user's usage."""

    first_token_at: datetime | None = None
    model_retries: int = 0
    policy_denials: int = 0
    usage: dict[str, Any] | None = None


def do_finish_turn(*, turn_id: uuid.UUID, status: str, error: str = "", seq: int, sdk_session_id: str = "",
                   figures: TurnFigures = TurnFigures()) -> bool:
    """Record the turn's end and interrupt any call still running. False when it had already ended."""
    with transaction.atomic():
        changed = Turn.objects.filter(pk=turn_id, status=TurnStatus.RUNNING).update(
            status=status, error=error, finished_at=timezone.now(), seq=seq, first_token_at=figures.first_token_at,
            model_retries=figures.model_retries, policy_denials=figures.policy_denials)
        if not changed:
            return False
        if figures.usage is not None:
            Message.objects.filter(answered_turn__pk=turn_id).update(usage=figures.usage)
        ToolCall.objects.filter(turn_id=turn_id, status=ToolCallStatus.RUNNING).update(
            status=ToolCallStatus.INTERRUPTED, error_text="interrupted", finished_at=timezone.now(), output_seq=seq)
        if sdk_session_id:
            ChatSession.objects.filter(turns__pk=turn_id).update(sdk_session_id=sdk_session_id)
    return True

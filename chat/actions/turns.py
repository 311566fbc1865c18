"""Writes of a turn's life: start, tool calls, text, finish. Each hot-path write is one statement."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from chat.engine.session_store import DjangoSessionStore
from chat.errors import BadMessage, OverBudget, QueueFull, TurnRunning, TurnStarted, UnknownMessage
from chat.models import (
    ChatSession,
    Message,
    MessageRole,
    ToolCall,
    ToolCallStatus,
    TranscriptEntry,
    Turn,
    TurnStatus,
    UsageDay,
)
from chat.usage import budget_left
from chat.workspaces import transcript_project_key
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
            .filter(Q(client_message_id=client_message_id) | Q(user_message__client_message_id=client_message_id),
                    session=session).first())


def text_parts(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "index": 0, "text": text}]


def do_start_turn(*, session: ChatSession, text: str, client_message_id: uuid.UUID, queue: bool = False,
                  edit_of: uuid.UUID | None = None) -> StartedTurn:
    """Save the user's message, an empty assistant message and a running turn, atomically; the new answer becomes
    the session's active leaf. With `queue`, while another turn runs, a queued turn instead: it starts when those
    before it have ended, and only then joins the conversation (after whatever is its newest answer by then).

    The message follows the session's active leaf, or, with `edit_of` (a user message of the session), takes
    that message's place as a new version of it: it follows what the edited message followed.
    Idempotent on `client_message_id`, queued sends too. Raises TurnRunning while another turn of the session
    runs (without `queue`; the partial unique index on running turns makes that hold between concurrent callers
    too), QueueFull past MAX_QUEUED_TURNS, OverBudget, UnknownMessage for an `edit_of` that is not a user message
    of the session, BadMessage for an edit sent with `queue`. The turn is unclaimed: whoever runs it claims it
    (`do_claim_turn`).
    """
    text = check_message_text(text)
    existing = _existing_turn(session, client_message_id)
    if existing is not None:
        return StartedTurn(existing, created=False)
    if queue and edit_of is not None:
        raise BadMessage("edit_of: an edit cannot wait in the queue; send it when the turn has ended")

    def prompt(position: int, active_leaf_id: uuid.UUID | None) -> Message:
        parent_id = active_leaf_id
        if edit_of is not None:
            edited = Message.objects.filter(session=session, pk=edit_of, role=MessageRole.USER).first()
            if edited is None:
                raise UnknownMessage("edit_of: no such user message in this chat")
            parent_id = edited.parent_id
        return Message.objects.create(session=session, position=position, role=MessageRole.USER, parent_id=parent_id,
                                      parts=text_parts(text), body=text, client_message_id=client_message_id)

    return _start(session, client_message_id, prompt, queue=queue)


def do_regenerate_turn(*, session: ChatSession, answer_id: uuid.UUID, client_message_id: uuid.UUID) -> StartedTurn:
    """Answer the user message that `answer_id` answers once more: a new answer beside it (a retry, after a failed
    or interrupted turn), which becomes the session's active leaf. The earlier answer is kept.

    Idempotent on `client_message_id`; raises as do_start_turn, and UnknownMessage for an id that is not an
    answer of the session.
    """
    existing = _existing_turn(session, client_message_id)
    if existing is not None:
        return StartedTurn(existing, created=False)

    def prompt(position: int, active_leaf_id: uuid.UUID | None) -> Message:
        answer = Message.objects.filter(session=session, pk=answer_id, role=MessageRole.ASSISTANT).first()
        user_message = Message.objects.filter(pk=answer.parent_id).first() if answer and answer.parent_id else None
        if user_message is None:
            raise UnknownMessage("no such answer in this chat")
        return user_message

    return _start(session, client_message_id, prompt)


def _start(session: ChatSession, client_message_id: uuid.UUID,
           prompt: Callable[[int, uuid.UUID | None], Message], *, queue: bool = False) -> StartedTurn:
    """Lock the session, check that a turn may start, then save the prompt (`prompt(position, active leaf)`
    returns it, new or not), an empty answer after it and a running (or queued) turn."""
    try:
        with transaction.atomic():
            # Lock the session row: positions and the queue are read and written by one starter at a time.
            locked = ChatSession.objects.select_for_update().filter(pk=session.pk).values("active_leaf_id").first()
            busy = Turn.objects.filter(session=session, status__in=[TurnStatus.RUNNING, TurnStatus.QUEUED])
            queued = queue and busy.exists()
            if busy.exists() and not queue:
                raise TurnRunning("a turn is already running in this session")
            limit = copilot_setting("MAX_QUEUED_TURNS")
            if queued and busy.filter(status=TurnStatus.QUEUED).count() >= limit:
                raise QueueFull(f"at most {limit} messages may wait for their turn; remove one or wait")
            left = budget_left(session.owner_id)
            if left is not None and left <= 0:
                raise OverBudget(f"you have spent today's budget of ${copilot_setting('USER_DAILY_BUDGET_USD'):,.2f}"
                                 " (USER_DAILY_BUDGET_USD); it renews at midnight UTC")
            last = Message.objects.filter(session=session).aggregate(last=Max("position"))["last"] or 0
            # A queued message's place in the conversation is set when its turn starts.
            user_message = prompt(last + 1, None if queued else locked["active_leaf_id"] if locked else None)
            assistant_message = Message.objects.create(session=session, position=last + 2, role=MessageRole.ASSISTANT,
                                                       parent=user_message)
            turn = Turn.objects.create(session=session, user_message=user_message, assistant_message=assistant_message,
                                       client_message_id=client_message_id,
                                       status=TurnStatus.QUEUED if queued else TurnStatus.RUNNING,
                                       queued_at=timezone.now() if queued else None)
            ChatSession.objects.filter(pk=session.pk).update(
                updated_at=timezone.now(), **({} if queued else {"active_leaf": assistant_message}))
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
        # It joins the conversation now, after the session's newest answer.
        leaf = ChatSession.objects.filter(pk=session_id).values_list("active_leaf_id", flat=True).first()
        Message.objects.filter(pk=turn.user_message_id).update(parent_id=leaf)
        ChatSession.objects.filter(pk=session_id).update(active_leaf_id=turn.assistant_message_id, updated_at=now)
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
    body = "".join(part.get("text", "") for part in parts if part.get("type") == "text")
    Message.objects.filter(pk=message_id).update(parts=parts, body=body, seq=seq)
    return True


def do_record_turn_start(*, turn_id: uuid.UUID, seq: int) -> bool:
    Turn.objects.filter(pk=turn_id).update(start_seq=seq)
    return True


def do_record_sdk_session(*, session_id: uuid.UUID, sdk_session_id: str, turn_id: uuid.UUID | None = None) -> None:
    """Remember the SDK conversation as soon as it exists, so even a turn whose process dies continues it."""
    ChatSession.objects.filter(pk=session_id).update(sdk_session_id=sdk_session_id)
    if turn_id is not None:
        Turn.objects.filter(pk=turn_id).update(sdk_session_id=sdk_session_id)


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
        session_id, owner_id = ChatSession.objects.filter(turns__pk=turn_id).values_list("pk", "owner_id").first()
        if figures.usage is not None:
            Message.objects.filter(answered_turn__pk=turn_id).update(usage=figures.usage)
            add_usage_of_today(owner_id=owner_id, usage=figures.usage)
        ToolCall.objects.filter(turn_id=turn_id, status=ToolCallStatus.RUNNING).update(
            status=ToolCallStatus.INTERRUPTED, error_text="interrupted", finished_at=timezone.now(), output_seq=seq)
        if sdk_session_id:
            ChatSession.objects.filter(pk=session_id).update(sdk_session_id=sdk_session_id)
            Turn.objects.filter(pk=turn_id).update(sdk_session_id=sdk_session_id,
                                                   sdk_leaf_uuid=last_transcript_entry(session_id, sdk_session_id))
    return True


def last_transcript_entry(session_id: uuid.UUID, sdk_session_id: str) -> str:
    """The uuid of the newest entry of the SDK session's main transcript: where a branch from it resumes."""
    return TranscriptEntry.objects.filter(
        namespace=DjangoSessionStore().namespace, project_key=transcript_project_key(session_id),
        session_id=sdk_session_id, subpath="", uuid__isnull=False).order_by("-id").values_list(
        "uuid", flat=True).first() or ""


def add_usage_of_today(*, owner_id: int, usage: dict[str, Any]) -> None:
    """Add one answer's tokens and cost to its user's total of today (UTC)."""
    row, _ = UsageDay.objects.get_or_create(user_id=owner_id, day=timezone.now().date())
    UsageDay.objects.filter(pk=row.pk).update(
        turns=F("turns") + 1, cost_usd=F("cost_usd") + float(usage.get("cost_usd") or 0),
        **{name: F(name) + int(usage.get(name) or 0) for name in USAGE_TOKENS})


USAGE_TOKENS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")

"""The newest seq whose effect is saved for a session: where a log that does not hold the session starts again,
and the `last_seq` of a snapshot read in the same transaction."""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.db.models import IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Greatest

from chat.models import Approval, ChatSession, Message, SessionNotice, ToolCall, Turn


def _newest(rows: QuerySet, field: str) -> Coalesce:
    return Coalesce(Subquery(rows.order_by(f"-{field}").values(field)[:1], output_field=IntegerField()), Value(0))


def last_durable_seq(session_id: object) -> int:
    """One query over every column that records a seq: messages, turns (start and finish), tool calls (input
    and output) and notices."""
    session = OuterRef("pk")
    calls = ToolCall.objects.filter(turn__session=session)
    row = ChatSession.objects.filter(pk=session_id).annotate(last=Greatest(
        _newest(Message.objects.filter(session=session).exclude(seq=None), "seq"),
        _newest(Turn.objects.filter(session=session), "seq"),
        _newest(Turn.objects.filter(session=session).exclude(start_seq=None), "start_seq"),
        _newest(calls, "input_seq"),
        _newest(calls.exclude(output_seq=None), "output_seq"),
        _newest(SessionNotice.objects.filter(session=session).exclude(seq=None), "seq"),
        _newest(Approval.objects.filter(turn__session=session), "request_seq"),
        _newest(Approval.objects.filter(turn__session=session).exclude(decision_seq=None), "decision_seq"),
    )).values_list("last", flat=True).first()
    return row or 0


last_durable_seq_async = database_sync_to_async(last_durable_seq)

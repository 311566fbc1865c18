"""Writes of approvals: a tool call that waits for a person, and the one decision that ends the wait."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import IntegrityError
from django.utils import timezone

from chat.models import Approval


def do_request_approval(*, approval_id: uuid.UUID, turn_id: uuid.UUID, tool_use_id: str, tool_name: str,
                        tool_input: Any, expires_at: datetime, seq: int) -> bool:
    """Save a waiting call (one INSERT), with the seq of its data-approval event; False when it waits already."""
    try:
        Approval.objects.create(id=approval_id, turn_id=turn_id, tool_use_id=tool_use_id, tool_name=tool_name,
                                input=tool_input, expires_at=expires_at, request_seq=seq)
    except IntegrityError:
        return False
    return True


def do_decide_approval(*, approval_id: uuid.UUID, decision: str, by: str, seq: int) -> bool:
    """The first decision wins (one conditional UPDATE); False when it had been decided already."""
    return Approval.objects.filter(pk=approval_id, decision="").update(
        decision=decision, decided_by=by, decided_at=timezone.now(), decision_seq=seq) == 1

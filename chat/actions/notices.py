"""Posting a notice to a session: how other domains (agents) tell a chat something outside its turns."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from chat.events.notices import announce_notice
from chat.models import SessionNotice


def do_post_notice(*, session_id: Any, kind: str, key: str, payload: dict[str, Any]) -> SessionNotice | None:
    """Save a notice for the session in the caller's transaction; once that commits, it is appended to the
    session's event log as a `data-<kind>` event outside turns (by this process, or the one that holds the log).

    Each `key` is posted once per session: None when it was posted before (or the session is gone).
    """
    try:
        with transaction.atomic():
            notice = SessionNotice.objects.create(session_id=session_id, kind=kind, key=key, payload=payload)
    except IntegrityError:
        return None
    transaction.on_commit(lambda: announce_notice(notice))
    return notice

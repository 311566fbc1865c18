"""Creating, renaming and deleting chat sessions."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from chat.errors import BadMessage, TurnRunning
from chat.events.factory import get_event_log
from chat.models import ChatSession, TranscriptEntry, Turn, TurnStatus
from chat.workspaces import delete_workspace, transcript_project_key
from core.conf import copilot_setting
from core.errors import QuotaExceeded

MAX_TITLE_CHARS = 200


def check_title(title: object) -> str:
    if not isinstance(title, str) or not title.strip():
        raise BadMessage("title: a non-empty string is required")
    if len(title) > MAX_TITLE_CHARS:
        raise BadMessage(f"title: at most {MAX_TITLE_CHARS} characters")
    return title.strip()


def do_create_session(*, owner: AbstractBaseUser, title: str = "New chat") -> ChatSession:
    """Raises QuotaExceeded when the owner has MAX_SESSIONS_PER_USER sessions already."""
    title = check_title(title)
    limit = copilot_setting("MAX_SESSIONS_PER_USER")
    if ChatSession.objects.filter(owner=owner).count() >= limit:
        raise QuotaExceeded(f"you have {limit:,} chats, the most allowed: delete some first", code="too_many_sessions")
    return ChatSession.objects.create(owner=owner, title=title)


def do_rename_session(*, session: ChatSession, title: str) -> ChatSession:
    session.title = check_title(title)
    session.save(update_fields=["title", "updated_at"])
    return session


APPROVAL_MODES = ("auto", "ask")


def do_set_approval_mode(*, session: ChatSession, mode: object) -> ChatSession:
    """"ask": every tool call the policy allows waits for the user, from the session's next turn on."""
    if mode not in APPROVAL_MODES:
        raise BadMessage('approval_mode: "auto" or "ask"')
    session.approval_mode = mode
    session.save(update_fields=["approval_mode", "updated_at"])
    return session


def do_delete_session(*, session: ChatSession) -> None:
    """Delete the session with everything it left: rows, its saved SDK conversation, its workspace and events.

    Raises TurnRunning while a turn of the session runs. Locks the session row, as starting a turn does, so
    none starts in between; the workspace and the events go once the deletion is committed.
    """
    session_id = session.pk
    with transaction.atomic():
        ChatSession.objects.select_for_update().filter(pk=session_id).first()
        if Turn.objects.filter(session_id=session_id, status=TurnStatus.RUNNING).exists():
            raise TurnRunning("stop the running turn before deleting the chat")
        TranscriptEntry.objects.filter(project_key=transcript_project_key(session_id)).delete()
        if session.sdk_session_id:
            TranscriptEntry.objects.filter(session_id=session.sdk_session_id).delete()
        session.delete()
        transaction.on_commit(lambda: forget_session(session_id))


def forget_session(session_id: object) -> None:
    delete_workspace(session_id)
    async_to_sync(get_event_log().forget)(str(session_id))

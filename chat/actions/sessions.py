"""Creating, renaming, titling, choosing the model and the branch of, and deleting chat sessions."""

from __future__ import annotations

import uuid

from asgiref.sync import async_to_sync
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from chat.actions.notices import do_post_notice
from chat.branches import MessageTree
from chat.errors import BadMessage, BadModel, TurnRunning, UnknownMessage
from chat.events.factory import get_event_log
from chat.models import ChatSession, Message, TranscriptEntry, Turn, TurnStatus
from chat.workspaces import delete_workspace, transcript_project_key
from core.conf import copilot_setting
from core.errors import QuotaExceeded

MAX_TITLE_CHARS = 200
DEFAULT_TITLE = "New chat"


def check_title(title: object) -> str:
    if not isinstance(title, str) or not title.strip():
        raise BadMessage("title: a non-empty string is required")
    if len(title) > MAX_TITLE_CHARS:
        raise BadMessage(f"title: at most {MAX_TITLE_CHARS} characters")
    return title.strip()


def do_create_session(*, owner: AbstractBaseUser, title: str | None = None) -> ChatSession:
    """A new chat, titled `title`, or "New chat" until its first turn has ended and a title is written for it.

    Raises QuotaExceeded when the owner has MAX_SESSIONS_PER_USER sessions already."""
    chosen = check_title(title) if title is not None else DEFAULT_TITLE
    limit = copilot_setting("MAX_SESSIONS_PER_USER")
    if ChatSession.objects.filter(owner=owner).count() >= limit:
        raise QuotaExceeded(f"you have {limit:,} chats, the most allowed: delete some first", code="too_many_sessions")
    return ChatSession.objects.create(owner=owner, title=chosen, title_set=title is not None)


def do_rename_session(*, session: ChatSession, title: str) -> ChatSession:
    """A person's title: it wins over any title written for the chat, now or later."""
    session.title = check_title(title)
    session.title_set = True
    session.save(update_fields=["title", "title_set", "updated_at"])
    return session


def do_write_title(*, session_id: uuid.UUID, title: str) -> bool:
    """Give a chat still called "New chat" (never titled by a person) the title written for it, and tell its
    sockets (`data-title`, an event outside turns). False when a person's title won meanwhile: then nothing
    changes. One UPDATE decides, so a rename at the same moment cannot be overwritten."""
    with transaction.atomic():
        changed = ChatSession.objects.filter(pk=session_id, title=DEFAULT_TITLE, title_set=False).update(
            title=title[:MAX_TITLE_CHARS])
        if changed:
            do_post_notice(session_id=session_id, kind="title", key="title", payload={"title": title})
    return bool(changed)


def model_ids() -> list[str]:
    return [model["id"] for model in copilot_setting("MODELS")]


def do_choose_model(*, session: ChatSession, model: object) -> ChatSession:
    """The model of the session's next turns (one of MODELS); a turn that runs keeps its own. BadModel else."""
    if not isinstance(model, str) or model not in model_ids():
        raise BadModel(f"model: one of {', '.join(model_ids())}")
    session.model = model
    session.save(update_fields=["model", "updated_at"])
    return session


def do_switch_branch(*, session: ChatSession, message_id: object) -> ChatSession:
    """Show the branch through `message_id` (any version of any message), down to its newest message; the next
    turn continues it. Raises UnknownMessage, and TurnRunning while a turn runs (its answer would leave the
    branch shown). Locks the session row, as starting a turn does."""
    try:
        message_uuid = uuid.UUID(str(message_id))
    except ValueError:
        raise UnknownMessage("active_leaf: no such message in this chat") from None
    with transaction.atomic():
        ChatSession.objects.select_for_update().filter(pk=session.pk).first()
        if Turn.objects.filter(session=session, status=TurnStatus.RUNNING).exists():
            raise TurnRunning("wait for the running turn to end before switching branches")
        tree = MessageTree(Message.objects.filter(session=session).only("id", "parent_id", "role", "position"))
        message = tree.by_id.get(message_uuid)
        if message is None:
            raise UnknownMessage("active_leaf: no such message in this chat")
        session.active_leaf_id = tree.newest_leaf_under(message).id
        ChatSession.objects.filter(pk=session.pk).update(active_leaf_id=session.active_leaf_id)
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
        # Every SDK session of the chat: the one its turns continue, and those its branches forked.
        sdk_sessions = {session.sdk_session_id, *Turn.objects.filter(session_id=session_id).exclude(
            sdk_session_id="").values_list("sdk_session_id", flat=True)} - {""}
        if sdk_sessions:
            TranscriptEntry.objects.filter(session_id__in=sdk_sessions).delete()
        session.delete()
        transaction.on_commit(lambda: forget_session(session_id))


def forget_session(session_id: object) -> None:
    delete_workspace(session_id)
    async_to_sync(get_event_log().forget)(str(session_id))

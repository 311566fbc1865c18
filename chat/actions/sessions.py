"""Creating, renaming and deleting chat sessions."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from chat.errors import BadMessage
from chat.models import ChatSession

MAX_TITLE_CHARS = 200


def check_title(title: object) -> str:
    if not isinstance(title, str) or not title.strip():
        raise BadMessage("title: a non-empty string is required")
    if len(title) > MAX_TITLE_CHARS:
        raise BadMessage(f"title: at most {MAX_TITLE_CHARS} characters")
    return title.strip()


def do_create_session(*, owner: AbstractBaseUser, title: str = "New chat") -> ChatSession:
    return ChatSession.objects.create(owner=owner, title=check_title(title))


def do_rename_session(*, session: ChatSession, title: str) -> ChatSession:
    session.title = check_title(title)
    session.save(update_fields=["title", "updated_at"])
    return session


def do_delete_session(*, session: ChatSession) -> None:
    session.delete()

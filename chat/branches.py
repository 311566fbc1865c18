"""Reads of a conversation's tree: the branch a session shows, each message's versions, and where in the SDK's
stored conversations a new turn must continue so that the model sees exactly that branch.

A user message follows an answer (or nothing, at the start); an answer follows its user message. Editing a message
adds a sibling user message; regenerating an answer adds a sibling answer. Nothing is ever removed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chat.models import ChatSession, Message, TranscriptEntry, Turn


class MessageTree:
    """The messages of one session, as loaded once, and the branches through them."""

    def __init__(self, messages: Iterable[Message]) -> None:
        self.by_id: dict[uuid.UUID, Message] = {}
        self.children: dict[uuid.UUID | None, list[Message]] = {}
        for message in sorted(messages, key=lambda message: message.position):
            if message.id in self.by_id:
                continue
            self.by_id[message.id] = message
            self.children.setdefault(message.parent_id, []).append(message)

    def path_to(self, message: Message | None) -> list[Message]:
        """The branch from the first message down to `message`, oldest first."""
        path: list[Message] = []
        seen: set[uuid.UUID] = set()
        while message is not None and message.id not in seen:
            seen.add(message.id)
            path.append(message)
            message = self.by_id.get(message.parent_id) if message.parent_id else None
        return path[::-1]

    def newest_leaf_under(self, message: Message) -> Message:
        """Where a branch through `message` ends: its newest child, that one's newest child, and so on."""
        seen = {message.id}
        while children := [child for child in self.children.get(message.id, []) if child.id not in seen]:
            message = children[-1]
            seen.add(message.id)
        return message

    def active_branch(self, session: ChatSession) -> list[Message]:
        """The branch the session shows: down to its active leaf. Messages saved without one (no turn made them)
        are one line, in order."""
        leaf = self.by_id.get(session.active_leaf_id) if session.active_leaf_id else None
        if leaf is None:
            return sorted(self.by_id.values(), key=lambda message: message.position)
        return self.path_to(leaf)

    def versions_of(self, message: Message) -> list[Message]:
        """Every version of the message, itself included, oldest first."""
        return [sibling for sibling in self.children.get(message.parent_id, []) if sibling.role == message.role]

    def branch_dict(self, message: Message) -> dict[str, Any]:
        """PROTOCOL §8 `branch`: {index, count, siblings}."""
        siblings = self.versions_of(message)
        ids = [sibling.id for sibling in siblings]
        return {"index": ids.index(message.id) if message.id in ids else 0, "count": len(ids),
                "siblings": [str(sibling_id) for sibling_id in ids]}


def branch_of(message: Message) -> dict[str, Any]:
    """The `branch` of one message, read from the database (its siblings only)."""
    siblings = Message.objects.filter(session_id=message.session_id, parent_id=message.parent_id,
                                      role=message.role).order_by("position").only("id", "parent_id", "role",
                                                                                     "position")
    return MessageTree([*siblings, message]).branch_dict(message)


@dataclass(frozen=True)
class ResumePoint:
    """How a turn's SDK session starts: a fresh conversation (no `sdk_session_id`), the continuation of one, or
    a fork of one at an entry of its transcript (`resume_session_at`), leaving the original as it was."""

    sdk_session_id: str = ""
    resume_session_at: str | None = None
    fork_session: bool = False


def resume_point(parent_answer_id: uuid.UUID | None) -> ResumePoint:
    """Where a turn whose prompt follows the answer `parent_answer_id` continues, so the model sees that branch.

    Each SDK session stays a straight line: a turn that continues the newest turn of its SDK session resumes it;
    any other branch forks it at the last transcript entry of the turn it follows. An answer whose turn left
    nothing to continue from (it failed before the model process started, or its process died before the store
    held its conversation) is passed over for the one before it.
    """
    turn = _turn_answering(parent_answer_id)
    while turn is not None:
        if turn.sdk_session_id and _stored(turn.sdk_session_id):
            continued = Turn.objects.filter(session_id=turn.session_id, sdk_session_id=turn.sdk_session_id,
                                            assistant_message__position__gt=turn.assistant_message.position)
            if not continued.exists():
                return ResumePoint(sdk_session_id=turn.sdk_session_id)
            if turn.sdk_leaf_uuid:
                return ResumePoint(sdk_session_id=turn.sdk_session_id, resume_session_at=turn.sdk_leaf_uuid,
                                   fork_session=True)
        turn = _turn_answering(turn.user_message.parent_id)
    return ResumePoint()


def _stored(sdk_session_id: str) -> bool:
    """Whether the session store holds that SDK conversation (a CLI can resume it)."""
    return TranscriptEntry.objects.filter(session_id=sdk_session_id, subpath="").exists()


def _turn_answering(answer_id: uuid.UUID | None) -> Turn | None:
    if answer_id is None:
        return None
    return Turn.objects.select_related("assistant_message", "user_message").filter(
        assistant_message_id=answer_id).first()

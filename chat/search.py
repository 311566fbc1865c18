"""Searching a user's chats (PROTOCOL §8): the sessions in which every word asked for is found, in the title or in
a message. Full-text search on PostgreSQL (GIN indexes over `to_tsvector('simple', …)`, migration 0008, each
word matched as a prefix, the best-ranked message chosen for the snippet); case-insensitive substrings elsewhere
(SQLite)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Case, Q, QuerySet, Value, When

from chat.errors import BadQuery
from chat.models import ChatSession, Message

WORD = re.compile(r"\w+")
MAX_WORDS = 10
MAX_WORD_CHARS = 64
SNIPPET_BEFORE, SNIPPET_AFTER = 60, 140
SEARCH_CONFIG = "simple"  # no stemming and no stop words: the same for every language


def search_words(query: object) -> list[str]:
    """The words of a query (letters, digits, underscores), lowercased, each once; BadQuery when there are none."""
    words = list(dict.fromkeys(word.lower()[:MAX_WORD_CHARS] for word in WORD.findall(str(query or ""))))
    if not words:
        raise BadQuery("q: at least one word (letters or digits) is required")
    if len(words) > MAX_WORDS:
        raise BadQuery(f"q: at most {MAX_WORDS} words")
    return words


def full_text() -> bool:
    return connection.vendor == "postgresql"


def _ts_query(words: list[str], *, every: bool):
    from django.contrib.postgres.search import SearchQuery

    # Words are \w+ only, so the raw tsquery cannot be malformed: each word as a prefix, all of them or any.
    return SearchQuery((" & " if every else " | ").join(f"{word}:*" for word in words), config=SEARCH_CONFIG,
                       search_type="raw")


def messages_with(words: list[str], *, every: bool) -> QuerySet[Message]:
    """Messages that hold every one of `words`, or (every=False) any of them."""
    if full_text():
        from django.contrib.postgres.search import SearchVector

        return Message.objects.annotate(search=SearchVector("body", config=SEARCH_CONFIG)).filter(
            search=_ts_query(words, every=every))
    condition = Q()
    for word in words:
        condition = condition & Q(body__icontains=word) if every else condition | Q(body__icontains=word)
    return Message.objects.filter(condition)


def titles_with(word: str) -> QuerySet:
    if full_text():
        from django.contrib.postgres.search import SearchVector

        return ChatSession.objects.annotate(search=SearchVector("title", config=SEARCH_CONFIG)).filter(
            search=_ts_query([word], every=True)).values("pk")
    return ChatSession.objects.filter(title__icontains=word).values("pk")


def search_sessions(user: AbstractBaseUser, words: list[str]) -> QuerySet[ChatSession]:
    """The user's sessions (only theirs) in which every word is found, in the title or in a message, newest first."""
    sessions = ChatSession.objects.filter(owner=user)
    for word in words:
        in_messages = messages_with([word], every=True).filter(session__owner=user).values("session_id")
        sessions = sessions.filter(Q(pk__in=titles_with(word)) | Q(pk__in=in_messages))
    return sessions.order_by("-updated_at", "id")


@dataclass(frozen=True)
class Match:
    message_id: uuid.UUID | None  # None: only the title matched
    snippet: str

    def as_dict(self) -> dict[str, Any]:
        return {"message_id": str(self.message_id) if self.message_id else None, "snippet": self.snippet}


def matches_in(sessions: list[ChatSession], words: list[str]) -> dict[uuid.UUID, Match]:
    """For each session, its best matching message and a snippet around the first word found in it; the title when
    no message holds any of the words. Best: the highest ts_rank on PostgreSQL; elsewhere the most words found,
    then the newest."""
    ids = [session.pk for session in sessions]
    found = messages_with(words, every=False).filter(session_id__in=ids)
    if full_text():
        from django.contrib.postgres.search import SearchRank, SearchVector

        ranked = found.annotate(rank=SearchRank(SearchVector("body", config=SEARCH_CONFIG),
                                                _ts_query(words, every=False)))
        rows = ranked.order_by("session_id", "-rank", "-position").distinct("session_id")
    else:
        found_words = sum((Case(When(body__icontains=word, then=1), default=0) for word in words), Value(0))
        rows = found.annotate(found_words=found_words).order_by("session_id", "-found_words", "-position")
    best: dict[uuid.UUID, uuid.UUID] = {}
    for row in rows.values("session_id", "id"):
        best.setdefault(row["session_id"], row["id"])
    bodies = dict(Message.objects.filter(pk__in=best.values()).values_list("id", "body"))
    return {session.pk: Match(best[session.pk], snippet(bodies[best[session.pk]], words)) if session.pk in best
            else Match(None, session.title) for session in sessions}


def snippet(text: str, words: list[str]) -> str:
    """A stretch of `text` around the first place one of `words` starts, on whole words, with … where cut."""
    text = " ".join(text.split())
    found = re.search("|".join(re.escape(word) for word in words), text, re.IGNORECASE)
    at = found.start() if found else 0
    start = max(0, at - SNIPPET_BEFORE)
    end = min(len(text), at + SNIPPET_AFTER)
    if start > 0:
        space = text.find(" ", start, at)
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", at, end)
        end = space if space > at else end
    return ("…" if start > 0 else "") + text[start:end] + ("…" if end < len(text) else "")


def highlighted(text: str, words: list[str]) -> list[tuple[str, bool]]:
    """`text` cut into (piece, is a match) pieces, so a page can mark the matches without building HTML by hand."""
    pattern = re.compile("|".join(re.escape(word) for word in sorted(words, key=len, reverse=True)), re.IGNORECASE)
    pieces: list[tuple[str, bool]] = []
    last = 0
    for found in pattern.finditer(text):
        if found.start() > last:
            pieces.append((text[last:found.start()], False))
        pieces.append((found.group(), True))
        last = found.end()
    if last < len(text):
        pieces.append((text[last:], False))
    return pieces

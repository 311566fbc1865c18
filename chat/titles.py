"""Titles for new chats (PROTOCOL §8): once a turn of a chat still called "New chat" has ended, one small request to
the model (TITLE_MODEL, at most TITLE_MAX_TOKENS, within TITLE_TIMEOUT_SECONDS) writes a title from the first
message and its answer; when that fails, the first message's words make one. A title never holds `#script` text,
is at most 60 characters, and never replaces a person's (chat.actions.sessions.do_write_title). The chat's sockets
hear it as `data-title`, an event outside turns.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from channels.db import database_sync_to_async
from django.utils import timezone

from chat.actions.sessions import DEFAULT_TITLE, do_write_title
from chat.engine.observers import TurnInfo, TurnObserver
from chat.models import ChatSession, Message, MessageRole
from core.conf import copilot_setting

logger = logging.getLogger(__name__)

MAX_TITLE_CHARS = 60
EXCERPT_CHARS = 1_500  # of the first message and of its answer, in the request
DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
INSTRUCTION = ("Write a title of at most six words for the conversation below, in its language. "
               "Answer with the title only: no quotes, no punctuation at the end.")
SCRIPT_LINE = re.compile(r"^\s*#script\b.*$", re.MULTILINE)
LABEL = re.compile(r"^\s*(title\s*:\s*)", re.IGNORECASE)
EDGES = "\"'`*#_ .:“”‘’«»"


@dataclass(frozen=True)
class FirstExchange:
    prompt: str  # the first message, without `#script` lines
    answer: str


def without_script(text: str) -> str:
    return SCRIPT_LINE.sub("", text).strip()


def first_exchange(session_id: str) -> FirstExchange | None:
    """The chat's first message and its first answer, when the chat still waits for a title; else None."""
    if not ChatSession.objects.filter(pk=session_id, title=DEFAULT_TITLE, title_set=False).exists():
        return None
    messages = Message.objects.filter(session_id=session_id).order_by("position")
    prompt = messages.filter(role=MessageRole.USER).first()
    if prompt is None:
        return None
    answer = messages.filter(role=MessageRole.ASSISTANT, parent=prompt).first()
    return FirstExchange(prompt=without_script(prompt.text), answer=without_script(answer.text if answer else ""))


def fitted(text: str) -> str:
    """One line of at most MAX_TITLE_CHARS, cut between words, with no `#script` in it; "" when nothing is left."""
    text = " ".join(SCRIPT_LINE.sub("", text).replace("#script", "").split())
    if len(text) <= MAX_TITLE_CHARS:
        return text
    cut = text[:MAX_TITLE_CHARS - 1]
    if " " in cut:
        cut = cut[:cut.rindex(" ")]
    return cut.rstrip(" ,;:-") + "…"


def cleaned_model_title(text: str) -> str:
    """The model's answer as a title: its first line, without a "Title:" label, quotes or markup."""
    text = SCRIPT_LINE.sub("", text).replace("#script", "")
    line = next((line for line in text.splitlines() if line.strip()), "")
    return fitted(LABEL.sub("", line).strip(EDGES))


def words_title(exchange: FirstExchange) -> str:
    """The first message's words (else the answer's), as a title; else the day."""
    for text in (exchange.prompt, exchange.answer):
        title = fitted(text)
        if title:
            return title[0].upper() + title[1:]
    return f"Chat of {timezone.now():%Y-%m-%d}"


async def model_title(exchange: FirstExchange) -> str:
    """A title written by TITLE_MODEL; "" when no model is set, it fails, or it takes too long."""
    model = copilot_setting("TITLE_MODEL")
    if not model or not exchange.prompt:
        return ""
    body = {"model": model, "max_tokens": copilot_setting("TITLE_MAX_TOKENS"), "system": INSTRUCTION,
            "messages": [{"role": "user", "content": f"User: {exchange.prompt[:EXCERPT_CHARS]}\n\n"
                                                     f"Assistant: {exchange.answer[:EXCERPT_CHARS]}"}]}
    base_url = (copilot_setting("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    headers = {"x-api-key": copilot_setting("ANTHROPIC_API_KEY") or "", "anthropic-version": API_VERSION}
    timeout = copilot_setting("TITLE_TIMEOUT_SECONDS")
    try:
        async with asyncio.timeout(timeout), httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(f"{base_url}/v1/messages", json=body, headers=headers)
        response.raise_for_status()
        content: list[dict[str, Any]] = response.json()["content"]
        text = "".join(part.get("text", "") for part in content if part.get("type") == "text")
    except (TimeoutError, httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.info("the title request failed (%s: %s); the first words make the title", type(exc).__name__, exc)
        return ""
    return cleaned_model_title(text)


class TitleWriter(TurnObserver):
    """Hears every turn's end; writes the title of a chat that still waits for one, in a task of its own."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def turn_ended(self, turn: TurnInfo, *, status: str, seconds: float, usage: dict[str, Any] | None) -> None:
        if not copilot_setting("WRITE_TITLES"):
            return
        task = asyncio.get_running_loop().create_task(self.write(turn.session_id), name=f"title {turn.session_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def write(self, session_id: str) -> None:
        try:
            exchange = await database_sync_to_async(first_exchange)(session_id)
            if exchange is None:
                return
            title = await model_title(exchange) or words_title(exchange)
            if await database_sync_to_async(do_write_title)(session_id=uuid.UUID(session_id), title=title):
                logger.info("session=%s titled %r", session_id, title)
        except Exception:
            logger.exception("session=%s could not be titled", session_id)

    async def settle(self) -> None:
        """Wait for the titles being written (tests; shutdown cancels them with stop())."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


title_writer = TitleWriter()

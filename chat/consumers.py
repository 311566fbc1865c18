"""The websocket of one chat session (PROTOCOL §3): transport only; turns run in the engine."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
import weakref
from collections import Counter
from typing import TYPE_CHECKING, Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from chat.backlog import SendBacklog, guard_send_backlog
from chat.engine.control import cancel_tool_call, decide_approval
from chat.engine.registry import begin_turn, prewarm, running_turns, stop_turn
from chat.events.cursor import EventCursor, SnapshotNeeded
from chat.events.factory import get_event_log
from chat.events.liveness import current_liveness
from chat.events.log import session_group
from chat.limits import check_rate
from chat.selectors import access_session, session_snapshot
from core.conf import copilot_setting
from core.errors import ApplicationError, BadInput, NotFound
from core.untrusted_json import parse_json

if TYPE_CHECKING:
    from chat.actions.turns import StartedTurn

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY_SOCKETS = 4429


class FrameError(ApplicationError):
    code = "bad_frame"


_open_consumers: weakref.WeakSet[SessionConsumer] = weakref.WeakSet()
_sockets_per_user: Counter[int] = Counter()  # open sockets of this process, by user id


def open_socket_count() -> int:
    """Sockets of this process that are connected to a session."""
    return len(_open_consumers)


async def wait_for_delivery(seq_by_session: dict[str, int], *, timeout: float) -> None:
    """Wait (bounded) until every resumed socket of these sessions has sent the event with that seq."""
    waits = [consumer.delivered(seq_by_session[consumer.session_id]) for consumer in list(_open_consumers)
             if consumer.cursor is not None and consumer.session_id in seq_by_session]
    try:
        await asyncio.wait_for(asyncio.gather(*waits), timeout)
    except TimeoutError:
        logger.warning("some sockets did not receive their last events before shutdown")


class SessionConsumer(AsyncWebsocketConsumer):
    session = None
    session_id = ""
    counted_user: int | None = None  # counted among its user's open sockets (MAX_WEBSOCKETS_PER_USER)
    cursor: EventCursor | None = None  # None until the client sends `resume`
    _backlog: SendBacklog | None = None
    _progress: asyncio.Condition | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its per-message thread hop to close old database connections.

        That hop cost every watcher a thread-pool round trip per event; here every database call goes
        through `database_sync_to_async`, which closes old connections itself.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def delivered(self, seq: int) -> None:
        """Returns once this socket has sent the event `seq` (or later)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.cursor.delivered_seq >= seq)

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            self.session = await database_sync_to_async(access_session)(
                user=user, session_id=self.scope["url_route"]["kwargs"]["session_id"])
        except NotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        limit = copilot_setting("MAX_WEBSOCKETS_PER_USER")
        if _sockets_per_user[user.pk] >= limit:
            await self.send_json({"type": "error", "code": "too_many_sockets",
                                  "message": f"at most {limit} open connections per user; close some tabs"})
            await self.close(code=CLOSE_TOO_MANY_SOCKETS)
            self.session = None
            return
        _sockets_per_user[user.pk] += 1
        self.counted_user = user.pk
        self.session_id = str(self.session.id)
        self._progress = asyncio.Condition()
        self._backlog = guard_send_backlog(self.base_send, label=f"session={self.session_id} websocket")
        _open_consumers.add(self)
        running_turns.pool.socket_opened(self.session_id)  # its warm CLI stays while the chat is open
        await self.channel_layer.group_add(session_group(self.session_id), self.channel_name)

    async def disconnect(self, code: int) -> None:
        if self.counted_user is not None:
            _sockets_per_user[self.counted_user] -= 1
            if _sockets_per_user[self.counted_user] <= 0:
                del _sockets_per_user[self.counted_user]
            self.counted_user = None
        if self.session is not None:
            _open_consumers.discard(self)
            running_turns.pool.socket_closed(self.session_id)
            await self.channel_layer.group_discard(session_group(self.session_id), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session is None:
            return
        raw = text_data.encode() if text_data is not None else (bytes_data or b"")
        try:
            if len(raw) > copilot_setting("MAX_FRAME_BYTES"):
                raise ApplicationError(f"a frame is at most {copilot_setting('MAX_FRAME_BYTES')} bytes",
                                       code="too_large")
            await check_rate("frames", self.channel_name)
            frame = parse_frame(raw)
            handler = FRAME_HANDLERS.get(frame["type"])
            if handler is None:
                raise ApplicationError(f"unknown frame type {frame['type']!r}", code="unknown_type")
            await handler(self, frame)
        except ApplicationError as exc:
            await self.send_json({"type": "error", "code": exc.code, "message": exc.message})

    async def send_json(self, content: dict[str, Any], text: str | None = None) -> None:
        """Send `content`; `text` is its JSON when already made."""
        text = text or json.dumps(content)
        if self._backlog is not None and not await self._backlog.admit(len(text)):
            return  # dropped: the client reconnects and resumes from its last seq
        await self.send(text_data=text)

    # --- client frames ---

    async def on_send(self, frame: dict[str, Any]) -> None:
        text = string_field(frame, "text")
        client_message_id = uuid_field(frame, "client_message_id")
        edit_of = uuid_field(frame, "edit_of") if frame.get("edit_of") is not None else None
        queue = frame.get("queue", False)
        if not isinstance(queue, bool):
            raise FrameError("queue: true or false")
        started = await begin_turn(session=self.session, text=text, client_message_id=client_message_id,
                                   edit_of=edit_of, queue=queue)
        await self._ack(client_message_id, started)

    async def on_regenerate(self, frame: dict[str, Any]) -> None:
        client_message_id = uuid_field(frame, "client_message_id")
        started = await begin_turn(session=self.session, text="", client_message_id=client_message_id,
                                   regenerate=uuid_field(frame, "message_id"))
        await self._ack(client_message_id, started)

    async def _ack(self, client_message_id: uuid.UUID, started: StartedTurn) -> None:
        ack = {"type": "ack", "client_message_id": str(client_message_id), "turn_id": str(started.turn.id),
               "message_id": str(started.turn.user_message_id)}
        await self.send_json({**ack, "queued": True} if started.queued else ack)

    async def on_decide(self, frame: dict[str, Any]) -> None:
        """Its answer is the `data-approval-decision` event (PROTOCOL §7); only a refusal gets a frame."""
        await decide_approval(session=self.session, approval_id=string_field(frame, "approval_id"),
                              decision=frame.get("decision"))

    async def on_cancel_tool(self, frame: dict[str, Any]) -> None:
        """Its answer is the call's output (PROTOCOL §7); only a refusal gets a frame."""
        await cancel_tool_call(session=self.session, tool_call_id=string_field(frame, "toolCallId"))

    async def on_resume(self, frame: dict[str, Any]) -> None:
        after_seq = frame.get("after_seq")
        if isinstance(after_seq, bool) or not isinstance(after_seq, int):
            raise ApplicationError("after_seq: an integer is required", code="bad_frame")
        await check_rate("resumes", str(self.scope["user"].pk))  # a reconnect storm is not served replays
        event_log = get_event_log()
        last_seq = await event_log.last_seq(self.session_id)
        if after_seq < 0 or after_seq > last_seq:
            raise ApplicationError(f"after_seq must be from 0 to {last_seq}", code="bad_seq")
        self.cursor = EventCursor(session_id=self.session_id, event_log=event_log, after_seq=after_seq)
        await self._send_in_order(self.cursor.catch_up())
        await prewarm(session_id=self.session_id)  # its CLI starts while the user types
        await self.send_json(await current_liveness(self.session_id))

    async def on_stop(self, frame: dict[str, Any]) -> None:
        await stop_turn(session=self.session)

    async def on_ping(self, frame: dict[str, Any]) -> None:
        await self.send_json({"type": "pong"})

    # --- events from the session's log ---

    async def chat_liveness(self, message: dict[str, Any]) -> None:
        if self.cursor is not None:
            await self.send_json(message["liveness"], message.get("text"))

    async def chat_events(self, message: dict[str, Any]) -> None:
        if self.cursor is not None:
            texts = dict(zip((frame["seq"] for frame in message["events"]), message.get("texts", ())))
            await self._send_in_order(self.cursor.accept(message["events"]), texts)

    async def _send_in_order(self, frames_to_send, texts: dict[int, str] | None = None) -> None:
        try:
            frames = await frames_to_send
        except SnapshotNeeded:
            snapshot = await database_sync_to_async(session_snapshot)(self.session)
            await self.send_json({"type": "snapshot", "session": snapshot})
            self.cursor.delivered_seq = snapshot["last_seq"]
            frames = await self.cursor.catch_up()
        for frame in frames:
            await self.send_json(frame, texts.get(frame["seq"]) if texts else None)
        if frames:
            async with self._progress:
                self._progress.notify_all()


def parse_frame(raw: bytes) -> dict[str, Any]:
    try:
        frame = parse_json(raw)
    except BadInput as exc:
        raise FrameError(f"a frame is a JSON object: {exc.message}") from None
    if not isinstance(frame, dict):
        raise FrameError("a frame is a JSON object")
    if not isinstance(frame.get("type"), str):
        raise FrameError("type: a string is required")
    return frame


def string_field(frame: dict[str, Any], name: str) -> str:
    value = frame.get(name)
    if not isinstance(value, str):
        raise FrameError(f"{name}: a string is required")
    return value


def uuid_field(frame: dict[str, Any], name: str) -> uuid.UUID:
    try:
        return uuid.UUID(string_field(frame, name))
    except ValueError:
        raise FrameError(f"{name}: a UUID is required") from None


FRAME_HANDLERS = {
    "send": SessionConsumer.on_send,
    "regenerate": SessionConsumer.on_regenerate,
    "resume": SessionConsumer.on_resume,
    "stop": SessionConsumer.on_stop,
    "ping": SessionConsumer.on_ping,
    "decide": SessionConsumer.on_decide,
    "cancel_tool": SessionConsumer.on_cancel_tool,
}

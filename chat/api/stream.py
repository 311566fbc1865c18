"""`GET /api/sessions/<id>/stream/`: a turn's events as Server-Sent Events (PROTOCOL §4).

The body is the Vercel AI SDK's UI message stream: `id: <seq>` and `data: <chunk>` per event, a
`: keep-alive` comment while idle, and `data: [DONE]` after the turn's `finish`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from chat.auth import user_for_token
from chat.events import chunks
from chat.events.cursor import EventCursor, SnapshotNeeded
from chat.events.factory import get_event_log
from chat.events.liveness import current_liveness
from chat.events.log import session_group
from chat.selectors import access_session, running_turn
from core.conf import copilot_setting
from core.errors import ApplicationError, NotAuthenticated


async def request_user(request: HttpRequest):
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Token "):
        return await user_for_token(authorization.removeprefix("Token ").strip())
    user = await request.auser()
    return user if user is not None else AnonymousUser()


def parse_after(request: HttpRequest) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.GET.get("after")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ApplicationError("Last-Event-ID / after must be a non-negative integer", code="bad_seq")
    return value


@require_GET
async def session_stream(request: HttpRequest, session_id: str) -> HttpResponse:
    user = await request_user(request)
    if not user.is_authenticated:
        raise NotAuthenticated("Authentication credentials were not provided.")
    session = await database_sync_to_async(access_session)(user=user, session_id=session_id)
    after = parse_after(request)

    event_log = get_event_log()
    last_seq = await event_log.last_seq(str(session.id))
    if after is not None and after > last_seq:
        raise ApplicationError(f"after must be from 0 to {last_seq}", code="bad_seq")
    turn = await database_sync_to_async(running_turn)(session.id)
    if after is None:
        if turn is None:
            return HttpResponse(status=204)
        after = turn.start_seq - 1 if turn.start_seq else last_seq
    else:
        pending = await event_log.read_after(str(session.id), after)
        if turn is None and not any(event.turn_id for event in pending or []):
            return HttpResponse(status=204)

    response = StreamingHttpResponse(turn_events(str(session.id), after), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    response["x-vercel-ai-ui-message-stream"] = "v1"
    return response


def liveness_part(liveness: dict) -> str:
    """A liveness as the AI SDK's transient data part: no `id:`, never stored in a message (PROTOCOL §7)."""
    return f"data: {json.dumps({'type': 'data-liveness', 'transient': True, 'data': liveness})}\n\n"


async def turn_events(session_id: str, after_seq: int) -> AsyncIterator[str]:
    """SSE lines for the turn events after `after_seq`, up to and including the next `finish`."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(session_group(session_id), channel)
    cursor = EventCursor(session_id=session_id, event_log=get_event_log(), after_seq=after_seq)
    receiving: asyncio.Task | None = None
    liveness = None  # told once the replay is sent, then as it changes
    try:
        frames = await cursor.catch_up()
        while True:
            for frame in frames:
                if frame["turn_id"] is None:
                    continue  # background reports reach the websocket and the snapshot, not this stream
                yield f"id: {frame['seq']}\ndata: {json.dumps(frame['chunk'])}\n\n"
                if frame["chunk"]["type"] == "finish":
                    yield "data: [DONE]\n\n"
                    return
            if liveness is None:
                liveness = await current_liveness(session_id)
                yield liveness_part(liveness)
            # Wait for live events without cancelling the pending receive on each keep-alive.
            receiving = receiving or asyncio.ensure_future(layer.receive(channel))
            done, _ = await asyncio.wait({receiving}, timeout=copilot_setting("HEARTBEAT_SECONDS"))
            if not done:
                yield ": keep-alive\n\n"
                frames = []
                continue
            message, receiving = receiving.result(), None
            if message["type"] == "chat.liveness":
                liveness = message["liveness"]
                yield liveness_part(liveness)
                frames = []
                continue
            frames = await cursor.accept(message["events"])
    except SnapshotNeeded:
        yield f"data: {json.dumps(chunks.error('these events are no longer kept; reload the session'))}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        if receiving is not None:
            receiving.cancel()
        await asyncio.shield(layer.group_discard(session_group(session_id), channel))

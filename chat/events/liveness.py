"""Liveness (PROTOCOL §7): how a session's turn is doing, told to its readers beside the event log, not in it.

A liveness is `{"type": "liveness", "turn_id", "state", "running_tools", "pending_approvals", "idle_ms"}`; it has no
seq and is never replayed. The process running the turn publishes each one to the session's readers (the
channel layer, as events are) and keeps the newest, in memory or in Redis (a key that expires), so a socket that
resumes on any process is told the current one at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from chat.events.log import session_group
from chat.models import Turn, TurnStatus
from core.conf import copilot_setting

IDLE_STATE = "idle"


def idle() -> dict[str, Any]:
    return {"type": "liveness", "turn_id": None, "state": IDLE_STATE, "running_tools": [], "pending_approvals": [],
            "idle_ms": 0}


class LivenessBoard:
    """The newest liveness of each session that a turn runs in: kept here, or in Redis for every process."""

    def __init__(self) -> None:
        self._local: dict[str, tuple[dict[str, Any], float]] = {}
        self._redis = None
        self._redis_loop = None

    def _client(self):
        import redis.asyncio as redis

        loop = asyncio.get_running_loop()
        if self._redis is None or self._redis_loop is not loop:
            self._redis, self._redis_loop = redis.Redis.from_url(copilot_setting("REDIS_URL")), loop
        return self._redis

    @staticmethod
    def _key(session_id: str) -> str:
        return f"{copilot_setting('REDIS_PREFIX')}:session:{session_id}:liveness"

    async def publish(self, session_id: str, liveness: dict[str, Any]) -> None:
        """Keep `liveness` as the session's newest and send it to every reader of the session."""
        text = json.dumps(liveness)
        if copilot_setting("REDIS_URL"):
            # Kept a little longer than the heartbeat that refreshes it: a turn whose process died goes quiet.
            expiry = int(copilot_setting("HEARTBEAT_SECONDS") * 3 * 1000)
            await self._client().set(self._key(session_id), text, px=expiry)
        else:
            self._local[session_id] = (liveness, time.monotonic())
        layer = get_channel_layer()
        if layer is not None:
            await layer.group_send(session_group(session_id), {"type": "chat.liveness", "liveness": liveness,
                                                               "text": text})

    async def current(self, session_id: str) -> dict[str, Any] | None:
        """The newest liveness of the session's running turn, `idle_ms` brought up to now; None when unknown."""
        if copilot_setting("REDIS_URL"):
            stored = await self._client().get(self._key(session_id))
            return json.loads(stored) if stored else None
        kept = self._local.get(session_id)
        if kept is None:
            return None
        liveness, at = kept
        if liveness["state"] == IDLE_STATE:
            return liveness
        return {**liveness, "idle_ms": liveness["idle_ms"] + int((time.monotonic() - at) * 1000)}

    async def forget(self, session_id: str) -> None:
        if copilot_setting("REDIS_URL"):
            await self._client().delete(self._key(session_id))
        self._local.pop(session_id, None)


liveness_board = LivenessBoard()


@database_sync_to_async
def _running_turn_id(session_id: str) -> str | None:
    turn_id = Turn.objects.filter(session_id=session_id, status=TurnStatus.RUNNING).values_list("pk", flat=True).first()
    return str(turn_id) if turn_id else None


async def current_liveness(session_id: str) -> dict[str, Any]:
    """What to tell a reader that just caught up: the running turn's newest liveness; `starting` for a turn that
    has published none yet (its process is only starting it); `idle` when no turn runs."""
    turn_id = await _running_turn_id(session_id)
    if turn_id is None:
        return idle()
    known = await liveness_board.current(session_id)
    if known is not None and known.get("turn_id") == turn_id:
        return known
    return {**idle(), "turn_id": turn_id, "state": "starting"}

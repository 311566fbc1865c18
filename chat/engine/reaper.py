"""Ends turns whose process died: their heartbeat went stale, so nobody else will ever finish them."""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async

from chat.actions.moderation import do_repair_transcript
from chat.actions.turns import do_finish_turn, do_record_tool_output
from chat.engine.registry import running_turns
from chat.events import chunks
from chat.events.chunks import INTERRUPTED
from chat.events.factory import get_event_log
from chat.events.notices import appends_here, deliver_pending_notices
from chat.models import ToolCall, ToolCallStatus, Turn, TurnStatus
from chat.selectors import stale_turns
from core.conf import copilot_setting

logger = logging.getLogger(__name__)

PROCESS_DIED = "interrupted: the server process running this turn stopped"


@database_sync_to_async
def stale_turns_with_open_calls() -> list[tuple[Turn, list[str]]]:
    turns = list(stale_turns())
    open_calls: dict = {}
    for tool_use_id, turn_id in ToolCall.objects.filter(turn__in=turns, status=ToolCallStatus.RUNNING).values_list(
            "tool_use_id", "turn_id"):
        open_calls.setdefault(turn_id, []).append(tool_use_id)
    return [(turn, open_calls.get(turn.id, [])) for turn in turns]


async def end_turn_as_interrupted(turn: Turn, open_tool_use_ids: list[str], *, error: str = PROCESS_DIED) -> bool:
    """Close a dead turn for everyone watching: its open calls, an error, `data-turn` and `finish`.

    False when the turn had already ended (another reaper, or its process after all).
    """
    event_log = get_event_log()
    session_id, turn_id = str(turn.session_id), str(turn.id)
    for tool_use_id in open_tool_use_ids:
        await event_log.append(session_id, turn_id, [chunks.tool_output_error(tool_use_id, INTERRUPTED)],
                               lambda seq, tool_use_id=tool_use_id: database_sync_to_async(do_record_tool_output)(
                                   turn_id=turn.id, tool_use_id=tool_use_id, seq=seq, error_text=INTERRUPTED,
                                   status=ToolCallStatus.INTERRUPTED))
    appended = await event_log.append(
        session_id, turn_id,
        [chunks.error(error), chunks.turn_status(turn_id, TurnStatus.INTERRUPTED), chunks.finish()],
        lambda seq: database_sync_to_async(do_finish_turn)(turn_id=turn.id, status=TurnStatus.INTERRUPTED,
                                                           error=error, seq=seq))
    return bool(appended)


async def reap_stale_turns(*, running_here: set[str] = frozenset()) -> list[str]:
    """End every stale turn not run by this process; returns the ids of the turns ended. The next queued message
    of each such session then starts here: its process is gone."""
    reaped = []
    for turn, open_calls in await stale_turns_with_open_calls():
        if str(turn.session_id) in running_here:
            continue
        if await end_turn_as_interrupted(turn, open_calls):
            logger.warning("session=%s turn=%s reaped: heartbeat older than %ss (process %s)",
                           turn.session_id, turn.id, copilot_setting("STALE_TURN_SECONDS"), turn.process)
            # Its CLI died with it: every tool_use it left open gets its result, so the next turn resumes.
            await database_sync_to_async(do_repair_transcript)(session_id=turn.session_id)
            reaped.append(str(turn.id))
            await running_turns.start_next_queued(str(turn.session_id))
    return reaped


async def reap_periodically(running_here) -> None:
    """Reap at start-up, then every half stale period, so a dead turn ends within the stale timeout.

    Each round also appends the notices whose append failed when they were saved.
    """
    while True:
        try:
            await reap_stale_turns(running_here=running_here())
            if appends_here():
                await deliver_pending_notices()
        except Exception:
            logger.exception("reaping stale turns failed; trying again later")
        await asyncio.sleep(copilot_setting("STALE_TURN_SECONDS") / 3)  # a dead turn is ended within 4/3 of it

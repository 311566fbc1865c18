"""Staff moderation: interrupting tool calls, and repairing the SDK transcripts they leave without a result.

The admin is a thin caller of these (and of the readers in chat.selectors: stale turns, dangling and stuck
calls). The writers say what they lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from chat.actions.turns import do_record_tool_output
from chat.engine.session_store import DjangoSessionStore
from chat.events import chunks
from chat.events.factory import get_event_log
from chat.models import ChatSession, ToolCall, ToolCallStatus, TranscriptEntry, Turn, TurnStatus
from chat.selectors import stale_since

# What the chat shows (the call's `errorText`), and what the model reads in the call's tool_result.
STAFF_INTERRUPTED = "interrupted by staff: a staff member ended this tool call"
TRANSCRIPT_INTERRUPTED = "interrupted"

# Copied from the CLI's own entry onto the tool_result entry added for it, as the CLI does.
_INHERITED_ENTRY_KEYS = ("userType", "entrypoint", "cwd", "sessionId", "version", "gitBranch")


@dataclass(frozen=True)
class InterruptedCall:
    ended: bool  # the call was open: it now has its error output, saved and shown to every watcher
    transcript_repaired: bool  # the SDK conversation got the tool_result it was missing for this call


async def interrupt_tool_call(*, tool_call: ToolCall) -> InterruptedCall:
    """End a call with an error output for everyone watching the chat, then repair the SDK conversation.

    Expects `tool_call.turn` loaded. The `tool-output-error` goes through the session's event log, so it
    is saved with its seq before it is published, and dropped when the call has ended meanwhile (its own
    output, the turn's end, another staff member). A call that had already ended only gets the repair.
    """
    turn = tool_call.turn
    appended = await get_event_log().append(
        str(turn.session_id), str(turn.id), [chunks.tool_output_error(tool_call.tool_use_id, STAFF_INTERRUPTED)],
        lambda seq: database_sync_to_async(do_record_tool_output)(
            turn_id=turn.id, tool_use_id=tool_call.tool_use_id, seq=seq, error_text=STAFF_INTERRUPTED,
            status=ToolCallStatus.INTERRUPTED))
    repaired = await database_sync_to_async(do_repair_transcript)(
        session_id=turn.session_id, tool_use_ids=[tool_call.tool_use_id])
    return InterruptedCall(ended=bool(appended), transcript_repaired=bool(repaired))


@dataclass(frozen=True)
class OpenToolUse:
    """A tool_use of the SDK conversation that no tool_result answers."""

    tool_use_id: str
    row: TranscriptEntry  # the assistant entry that holds the tool_use
    prompt_id: str | None  # the promptId of the user prompt it answers, as the CLI stamps its results


def transcript_of(session: ChatSession) -> QuerySet[TranscriptEntry]:
    """The main transcript (no subagents) of the session's SDK conversation, in the order it was written."""
    return TranscriptEntry.objects.filter(namespace=DjangoSessionStore().namespace,
                                          session_id=session.sdk_session_id, subpath="").order_by("id")


def open_tool_uses(session: ChatSession) -> list[OpenToolUse]:
    """The tool_uses of the session's SDK conversation that have no tool_result, in transcript order."""
    if not session.sdk_session_id:
        return []
    uses: dict[str, OpenToolUse] = {}
    answered: set[str] = set()
    prompt_id = None
    for row in transcript_of(session).filter(entry__type__in=["user", "assistant"]):
        entry = row.entry
        if entry.get("isSidechain"):
            continue
        if entry["type"] == "user":
            prompt_id = entry.get("promptId") or prompt_id
        content = (entry.get("message") or {}).get("content")
        blocks = [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []
        for block in blocks:
            if entry["type"] == "assistant" and block.get("type") == "tool_use" and block.get("id"):
                uses.setdefault(block["id"], OpenToolUse(block["id"], row, prompt_id))
            elif entry["type"] == "user" and block.get("type") == "tool_result":
                answered.add(block.get("tool_use_id"))
    return [use for tool_use_id, use in uses.items() if tool_use_id not in answered]


def interrupted_result_entry(use: OpenToolUse) -> dict[str, Any]:
    """A user entry answering `use` with an error, shaped and chained as the CLI writes the result of a call
    it could not finish: its parent is the assistant entry holding the tool_use, as for every tool_result."""
    source = use.row.entry
    entry: dict[str, Any] = {"parentUuid": source["uuid"], "isSidechain": False}
    if use.prompt_id:
        entry["promptId"] = use.prompt_id
    entry.update({
        "type": "user",
        "message": {"role": "user", "content": [{"type": "tool_result", "content": TRANSCRIPT_INTERRUPTED,
                                                 "is_error": True, "tool_use_id": use.tool_use_id}]},
        "uuid": str(uuid.uuid4()),
        "timestamp": timezone.now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "toolUseResult": TRANSCRIPT_INTERRUPTED,
        "toolDenialKind": "interrupted",
        "sourceToolAssistantUUID": source["uuid"],
    })
    entry.update({key: source[key] for key in _INHERITED_ENTRY_KEYS if key in source})
    return entry


def do_repair_transcript(*, session_id: uuid.UUID, tool_use_ids: Collection[str] | None = None) -> list[str]:
    """Answer each open tool_use of the session's SDK conversation (or only `tool_use_ids`) with an error result.

    So the next turn resumes a valid conversation: every tool_use followed by its tool_result. Does nothing
    while a live turn of the session (running, heartbeat fresh) has a CLI that may still write the
    transcript. Locks the session row, as do_start_turn does, so no turn starts in between. Idempotent.
    Returns the tool_use ids answered.
    """
    with transaction.atomic():
        session = ChatSession.objects.select_for_update().filter(pk=session_id).first()
        if session is None or Turn.objects.filter(session_id=session_id, status=TurnStatus.RUNNING,
                                                  heartbeat_at__gte=stale_since()).exists():
            return []
        uses = [use for use in open_tool_uses(session) if tool_use_ids is None or use.tool_use_id in tool_use_ids]
        TranscriptEntry.objects.bulk_create([
            TranscriptEntry(namespace=use.row.namespace, project_key=use.row.project_key, session_id=use.row.session_id,
                            subpath="", uuid=entry["uuid"], entry=entry)
            for use in uses for entry in [interrupted_result_entry(use)]])
    return [use.tool_use_id for use in uses]

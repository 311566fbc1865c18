"""Controlling a running turn from any device and any process (PROTOCOL §7): deciding a waiting call, cancelling
one call, removing a queued message. (Stopping is `chat.engine.registry.stop_turn`.)

What can be settled in the database is settled by the caller (the first decision wins; whether a call still
runs); the process that runs the turn then hears it: at once when it is this one, else on the session's control
group of the channel layer (chat.engine.registry).
"""

from __future__ import annotations

import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from chat.actions.turns import do_remove_queued_turn
from chat.engine.approvals import approval_of, decide
from chat.engine.binding import CANCELLED_BY_USER
from chat.engine.registry import control_group, running_turns
from chat.errors import AlreadyDecided, NotCancellable, NotRunning
from chat.models import ApprovalDecision, ChatSession, DecidedBy, ToolCall, ToolCallStatus, Turn, TurnStatus
from core.errors import ApplicationError, NotFound


class UnknownToolCall(NotRunning):
    """A toolCallId the session never had (PROTOCOL §7: `not_running`, HTTP 404)."""

    http_status = 404


async def tell_the_turn(session_id: str, message: dict[str, Any]) -> None:
    """Deliver a control message to the process running the session's turn, wherever it is."""
    runner = running_turns.runner_for(session_id)
    if runner is not None:
        await running_turns.control(runner, message)
    else:
        await get_channel_layer().group_send(control_group(session_id), message)


def check_decision(decision: object) -> str:
    if decision not in (ApprovalDecision.ALLOW, ApprovalDecision.DENY):
        raise ApplicationError('decision: "allow" or "deny"', code="bad_frame")
    return str(decision)


async def decide_approval(*, session: ChatSession, approval_id: Any, decision: object,
                          by: str = DecidedBy.USER) -> dict[str, str]:
    """Decide a waiting call of the session. Raises UnknownApproval (none such in this session) or
    AlreadyDecided (a decision came first, or the wait ended)."""
    decision = check_decision(decision)
    approval = await approval_of(str(session.id), approval_id)
    if not approval.is_pending:
        raise AlreadyDecided("this call has been decided already")
    await decide(session_id=str(session.id), turn_id=str(approval.turn_id), approval_id=approval.id,
                 tool_use_id=approval.tool_use_id, decision=decision, by=by)
    await tell_the_turn(str(session.id), {"type": "turn.decided", "turn_id": str(approval.turn_id),
                                          "approval_id": str(approval.id), "decision": decision, "by": by})
    return {"approval_id": str(approval.id), "decision": decision}


@database_sync_to_async
def _call_and_wait(session_id: str, tool_call_id: str) -> tuple[ToolCall | None, Any]:
    call = (ToolCall.objects.select_related("turn").filter(turn__session_id=session_id, tool_use_id=tool_call_id)
            .order_by("-started_at").first())
    waiting = None
    if call is not None and call.status == ToolCallStatus.RUNNING:
        waiting = call.turn.approvals.filter(tool_use_id=tool_call_id, decision="").first()
    return call, waiting


async def cancel_tool_call(*, session: ChatSession, tool_call_id: object, reason: str = CANCELLED_BY_USER) -> None:
    """End one running call of the session with `reason` as its result; its work stops and the turn goes on.

    Raises NotRunning (409: it has ended; 404: the session never had it), NotCancellable (a tool the CLI runs
    itself, once it has started: it cannot be stopped alone).
    """
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise ApplicationError("toolCallId: a string is required", code="bad_frame")
    call, waiting = await _call_and_wait(str(session.id), tool_call_id)
    if call is None:
        raise UnknownToolCall("this chat has no such tool call")
    if call.status != ToolCallStatus.RUNNING or call.turn.status != TurnStatus.RUNNING:
        raise NotRunning("this tool call has ended already")
    if waiting is not None:  # still waiting for a decision: cancelling it is deciding it
        try:
            await decide(session_id=str(session.id), turn_id=str(call.turn_id), approval_id=waiting.id,
                         tool_use_id=tool_call_id, decision=ApprovalDecision.DENY, by=DecidedBy.CANCEL)
        except AlreadyDecided:
            pass  # decided meanwhile: cancel whatever it does now
        else:
            await tell_the_turn(str(session.id), {"type": "turn.decided", "turn_id": str(call.turn_id),
                                                  "approval_id": str(waiting.id), "decision": ApprovalDecision.DENY,
                                                  "by": DecidedBy.CANCEL})
            return
    if not call.name.startswith("mcp__"):
        raise NotCancellable(f"{call.name} runs inside the model's process and cannot be stopped alone; "
                             "stop the turn instead")
    await tell_the_turn(str(session.id), {"type": "turn.cancel_tool", "turn_id": str(call.turn_id),
                                          "tool_call_id": tool_call_id, "reason": reason})


async def remove_queued_turn(*, session: ChatSession, turn_id: Any) -> None:
    """Remove a message that waits for its turn. Raises NotFound, or TurnStarted once it has started."""
    try:
        turn = await database_sync_to_async(Turn.objects.get)(pk=uuid.UUID(str(turn_id)), session=session)
    except (ValueError, TypeError, AttributeError, Turn.DoesNotExist):
        raise NotFound("no such turn in this chat") from None
    await database_sync_to_async(do_remove_queued_turn)(turn=turn)

"""Approvals (PROTOCOL §7): a call the policy allowed waits for a person when its session asks for that
(`approval_mode: "ask"`), or when its tool is named in ASK_BEFORE_TOOLS.

The wait happens inside the SDK's own mechanism — the PreToolUse hook / `can_use_tool`, through the turn's
binding (chat.engine.binding) — and is bounded by APPROVAL_TIMEOUT_SECONDS. The call is an event
(`data-approval`, after its `tool-input-available`), so every device sees it, live or after a reload. A decision
may come from any device and any process: the first one is saved and appended as `data-approval-decision` by
whoever made it (`decide`), then told to the process running the turn (chat.engine.control); later ones get
`already_decided`. A timeout, a stop or a cancel decide `deny` the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.utils import timezone

from chat.actions.approvals import do_decide_approval, do_request_approval
from chat.engine import observers
from chat.engine.binding import CANCELLED_BY_USER
from chat.engine.liveness import TurnLiveness
from chat.engine.observers import TurnInfo
from chat.errors import AlreadyDecided, UnknownApproval
from chat.events import chunks
from chat.events.factory import get_event_log
from chat.models import Approval, ApprovalDecision, DecidedBy
from chat.selectors import pending_approval_dict
from core.conf import copilot_setting

logger = logging.getLogger(__name__)

DENIED_BY_USER = "denied by the user"
INTERRUPTED_WAITING = "interrupted: the turn was stopped while this call waited for approval"


def approval_chunk(approval: Approval) -> chunks.DataChunk:
    return chunks.data("approval", pending_approval_dict(approval))


async def decide(*, session_id: str, turn_id: str, approval_id: uuid.UUID, tool_use_id: str, decision: str,
                 by: str) -> None:
    """Save the first decision of an approval and append its event; AlreadyDecided when one came first."""
    appended = await get_event_log().append(
        session_id, turn_id,
        [chunks.data("approval-decision", {"approval_id": str(approval_id), "toolCallId": tool_use_id,
                                           "decision": decision, "by": by})],
        lambda seq: database_sync_to_async(do_decide_approval)(approval_id=approval_id, decision=decision, by=by,
                                                               seq=seq))
    if not appended:
        raise AlreadyDecided("this call has been decided already")


@database_sync_to_async
def approval_of(session_id: str, approval_id: Any) -> Approval:
    """The session's approval (UnknownApproval for another session's, or none)."""
    try:
        return Approval.objects.select_related("turn").get(pk=uuid.UUID(str(approval_id)),
                                                           turn__session_id=session_id)
    except (ValueError, TypeError, AttributeError, Approval.DoesNotExist):
        raise UnknownApproval("no such approval in this chat") from None


class TurnApprovals:
    """One turn's waiting calls: asks, waits for the decision, and ends the waits when the turn stops."""

    def __init__(self, *, info: TurnInfo, mode: str, liveness: TurnLiveness, input_recorded) -> None:
        self.info = info
        self.mode = mode  # the session's approval_mode when the turn started
        self.liveness = liveness
        self._input_recorded = input_recorded  # awaitable factory: the call's tool-input-available is appended
        self._waiting: dict[str, tuple[Approval, asyncio.Future[tuple[str, str]]]] = {}  # by approval id
        self._stopping = False  # the turn is being stopped: no call waits any more

    def applies_to(self, tool_name: str) -> bool:
        return self.mode == "ask" or tool_name in copilot_setting("ASK_BEFORE_TOOLS")

    async def before_call(self, tool_name: str, tool_input: dict[str, Any], tool_use_id: str) -> str | None:
        """Wait for a decision on a call the policy allowed (when approvals apply); None when it may run, else
        the error text its call ends with."""
        if not self.applies_to(tool_name):
            return None
        if self._stopping:
            return INTERRUPTED_WAITING
        await self._input_recorded(tool_use_id)
        approval = Approval(id=uuid.uuid4(), tool_use_id=tool_use_id, tool_name=tool_name, input=tool_input,
                            expires_at=timezone.now() + timedelta(seconds=copilot_setting("APPROVAL_TIMEOUT_SECONDS")))
        decided: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()
        self._waiting[str(approval.id)] = (approval, decided)
        appended = await get_event_log().append(
            self.info.session_id, self.info.turn_id, [approval_chunk(approval)],
            lambda seq: database_sync_to_async(do_request_approval)(
                approval_id=approval.id, turn_id=uuid.UUID(self.info.turn_id), tool_use_id=tool_use_id,
                tool_name=tool_name, tool_input=tool_input, expires_at=approval.expires_at, seq=seq))
        if not appended:
            return DENIED_BY_USER
        if self._stopping and not decided.done():  # the stop came while it was being asked
            decided.set_result(await self._decide_for_the_user(approval, ApprovalDecision.DENY, DecidedBy.STOP))
        self.liveness.approval_pending(str(approval.id), tool_use_id)
        observers.notify("wait_started", self.info, kind="approval", key=str(approval.id))
        started = time.monotonic()
        decision, by = ApprovalDecision.DENY, DecidedBy.TIMEOUT
        try:
            decision, by = await asyncio.wait_for(asyncio.shield(decided), copilot_setting("APPROVAL_TIMEOUT_SECONDS"))
        except TimeoutError:
            decision, by = await self._decide_for_the_user(approval, ApprovalDecision.DENY, DecidedBy.TIMEOUT)
        except asyncio.CancelledError:  # the CLI gave up on the call: the turn is stopping
            if not decided.done():
                await asyncio.shield(self._decide_for_the_user(approval, ApprovalDecision.DENY, DecidedBy.STOP))
            raise
        finally:
            self._waiting.pop(str(approval.id), None)
            runs = decision == ApprovalDecision.ALLOW
            self.liveness.approval_done(str(approval.id), tool_use_id, runs=runs)
            observers.notify("wait_ended", self.info, kind="approval", key=str(approval.id),
                             seconds=time.monotonic() - started, outcome=f"{decision} by {by}")
        if decision == ApprovalDecision.ALLOW:
            return None
        if by == DecidedBy.CANCEL:
            return CANCELLED_BY_USER
        if by == DecidedBy.STOP:
            return INTERRUPTED_WAITING
        return DENIED_BY_USER if by == DecidedBy.USER else f"{DENIED_BY_USER}: nobody decided in time"

    async def _decide_for_the_user(self, approval: Approval, decision: str, by: str) -> tuple[str, str]:
        """Decide as the engine (a timeout, a stop, a cancel); when a person decided first, theirs stands."""
        try:
            await decide(session_id=self.info.session_id, turn_id=self.info.turn_id, approval_id=approval.id,
                         tool_use_id=approval.tool_use_id, decision=decision, by=by)
        except AlreadyDecided:
            saved = await database_sync_to_async(Approval.objects.get)(pk=approval.id)
            return saved.decision, saved.decided_by
        return decision, by

    def resolve(self, approval_id: str, decision: str, by: str) -> None:
        """A decision was saved (here or in another process): the waiting call goes on with it."""
        waiting = self._waiting.get(approval_id)
        if waiting is not None and not waiting[1].done():
            waiting[1].set_result((decision, by))

    def waiting_for(self, tool_use_id: str) -> Approval | None:
        return next((approval for approval, _ in self._waiting.values() if approval.tool_use_id == tool_use_id), None)

    async def end_all(self, by: str) -> None:
        """The turn stops: every call still waiting is denied `by` the stop, and none waits from now on."""
        self._stopping = True
        for approval, decided in list(self._waiting.values()):
            if not decided.done():
                decided.set_result(await self._decide_for_the_user(approval, ApprovalDecision.DENY, by))

"""A turn's liveness (PROTOCOL §7), kept by the engine from its own clock of model and tool activity.

The state is `starting` (waiting for capacity or for its CLI), `thinking` (waiting for the model), `streaming`,
`tools` (calls running), `awaiting_approval` (which wins over `tools`) or `stalled`: running, yet nothing heard
from the model or any tool for STALL_SECONDS. This clock is the engine's, apart from the turn's database
heartbeat. A liveness is published (chat.events.liveness) on every change of the state or of its sets, and at
least every HEARTBEAT_SECONDS while the turn runs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chat.events.liveness import liveness_board
from core.conf import copilot_setting

WAITING_STATES = frozenset({"starting", "awaiting_approval"})  # a wait for capacity or a person is no stall


class TurnLiveness:
    def __init__(self, *, session_id: str, turn_id: str) -> None:
        self.session_id = session_id
        self.turn_id = turn_id
        self.phase = "starting"  # starting, thinking or streaming
        self.running_tools: dict[str, None] = {}  # ordered sets
        self.pending_approvals: dict[str, None] = {}
        self.last_sign = time.monotonic()
        self._changed = asyncio.Event()
        self._published: tuple | None = None
        self._task: asyncio.Task[None] | None = None

    def state(self) -> str:
        if self.pending_approvals:
            return "awaiting_approval"
        if self.phase != "starting" and time.monotonic() - self.last_sign >= copilot_setting("STALL_SECONDS"):
            return "stalled"
        if self.running_tools:
            return "tools"
        return self.phase

    def frame(self) -> dict[str, Any]:
        return {"type": "liveness", "turn_id": self.turn_id, "state": self.state(),
                "running_tools": list(self.running_tools), "pending_approvals": list(self.pending_approvals),
                "idle_ms": int((time.monotonic() - self.last_sign) * 1000)}

    # --- what the turn tells it ---

    def sign_of_life(self) -> None:
        self.last_sign = time.monotonic()
        if self._published is not None and self._published[0] == "stalled":
            self._changed.set()

    def set_phase(self, phase: str) -> None:
        self.sign_of_life()
        if phase != self.phase:
            self.phase = phase
            self._changed.set()

    def tool_started(self, tool_call_id: str) -> None:
        self.sign_of_life()
        self.running_tools[tool_call_id] = None
        self._changed.set()

    def tool_ended(self, tool_call_id: str) -> None:
        self.sign_of_life()
        if self.running_tools.pop(tool_call_id, 0) is None:
            self._changed.set()

    def approval_pending(self, approval_id: str, tool_call_id: str) -> None:
        self.running_tools.pop(tool_call_id, None)  # waiting for a decision, not running
        self.pending_approvals[approval_id] = None
        self._changed.set()

    def approval_done(self, approval_id: str, tool_call_id: str, *, runs: bool) -> None:
        self.sign_of_life()
        self.pending_approvals.pop(approval_id, None)
        if runs:
            self.running_tools[tool_call_id] = None
        self._changed.set()

    # --- publishing ---

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._publish_changes(),
                                                            name=f"liveness {self.turn_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _publish_changes(self) -> None:
        heartbeat, stall = copilot_setting("HEARTBEAT_SECONDS"), copilot_setting("STALL_SECONDS")
        last_sent = float("-inf")
        while True:
            self._changed.clear()  # before reading: a change from now on wakes the wait below
            frame = self.frame()
            key = (frame["state"], tuple(frame["running_tools"]), tuple(frame["pending_approvals"]))
            now = time.monotonic()
            if key != self._published or now - last_sent >= heartbeat:
                self._published, last_sent = key, now
                await liveness_board.publish(self.session_id, frame)
            # Wake for a change, the next heartbeat, or the moment silence becomes a stall.
            watching = frame["state"] not in WAITING_STATES | {"stalled"}
            until_stall = self.last_sign + stall - now if watching else heartbeat
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.01, min(heartbeat - (now - last_sent), until_stall)))
            except TimeoutError:
                pass

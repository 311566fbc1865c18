"""What a chat session hears when work it handed to the background ends (PROTOCOL §2 "Events outside turns", §6):
a `data-agent-run` notice, posted through chat's interface in the transaction that ends
the work, so each ending is reported once."""

from __future__ import annotations

from typing import Any

from chat.actions.notices import do_post_notice

RUN = "agent-run"


def post_run_report(*, session_id: Any, run_id: Any, agent_id: Any, status: str, outputs: Any) -> None:
    """Inside the transaction that ends the run."""
    do_post_notice(session_id=session_id, kind=RUN, key=f"{RUN}:{run_id}", payload={
        "run_id": str(run_id), "agent_id": str(agent_id), "status": status, "outputs": outputs or {}})

"""What a chat session hears when work it handed to the background ends (PROTOCOL §2 "Events outside turns", §6):
a `data-agent-run` or `data-agent-build` notice, posted through chat's interface in the transaction that ends
the work, so each ending is reported once."""

from __future__ import annotations

from typing import Any

from chat.actions.notices import do_post_notice

RUN = "agent-run"
BUILD = "agent-build"


def post_run_report(*, session_id: Any, run_id: Any, agent_id: Any, status: str, outputs: Any) -> None:
    """Inside the transaction that ends the run."""
    do_post_notice(session_id=session_id, kind=RUN, key=f"{RUN}:{run_id}", payload={
        "run_id": str(run_id), "agent_id": str(agent_id), "status": status, "outputs": outputs or {}})


def post_build_report(*, session_id: Any, agent_id: Any, name: str, status: str, error: str = "") -> None:
    """Inside the transaction that ends the build."""
    do_post_notice(session_id=session_id, kind=BUILD, key=f"{BUILD}:{agent_id}", payload={
        "agent_id": str(agent_id), "name": name, "status": status, "error": error})

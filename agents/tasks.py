"""Background tasks (django.tasks, run by the database worker): thin wrappers around the executor and builder.

They import what they call inside their bodies: agents.actions enqueues them, so it imports this module first.
"""

from __future__ import annotations

import logging
import uuid

from django.tasks import task

logger = logging.getLogger(__name__)

QUEUE = "agents"


@task(queue_name=QUEUE)
def run_agent(run_id: str) -> str | None:
    """Execute a queued run on the worker's background loop; returns the status it ended with."""
    from agents.executor import execute_run
    from agents.worker import background_loop

    return background_loop().run(execute_run(uuid.UUID(run_id)), interruptible=True)


@task(queue_name=QUEUE)
def build_agent(agent_id: str) -> str | None:
    """Make a first graph from the agent's description and save it as version 1; returns the agent's status."""
    from agents.actions import do_claim_build, do_finish_build
    from agents.builder import graph_from_description
    from agents.graphs import GraphError
    from agents.reports import deliver_if_mine
    from agents.worker import background_loop

    agent = do_claim_build(agent_id=uuid.UUID(agent_id))
    if agent is None:
        return None
    try:
        graph, error = graph_from_description(name=agent.name, description=agent.description), ""
    except GraphError as exc:
        graph, error = None, f"the graph made from the description does not check: {exc.message}"
    ended, report = do_finish_build(agent_id=agent.id, graph=graph, error=error)
    background_loop().run(deliver_if_mine(report))
    if not ended:
        return None
    logger.info("agent=%s build ended %s", agent.id, "ready" if graph else f"failed: {error}")
    return "ready" if graph else "failed"

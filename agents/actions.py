"""Writes of agents and their runs (`do_*`), and checks of raw input (`check_*`).

A run ends in one transaction with the report its chat session will hear (agents.reports), and each
ending is a conditional UPDATE, so whoever ends it first — the worker, a cancel, the reaper — ends it alone.
A queued run wakes an idle worker, and a cancel the worker running it (core.broadcast), once committed.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from agents import observers, tasks
from agents.errors import AgentExists, AgentNotReady, BadAgent, RunFinished, TooManyRuns
from agents.graphs import GraphError, Problem, check_graph, check_run_inputs, saved_form, sink_ids
from agents.models import (
    Agent,
    AgentRun,
    AgentRunNode,
    AgentStatus,
    AgentVersion,
    LibraryAgent,
    NodeStatus,
    RunStatus,
    RunTrigger,
)
from agents.reports import post_run_report
from agents.selectors import latest_version
from core import broadcast
from core.conf import copilot_setting
from core.errors import QuotaExceeded

logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 10_000
UNFINISHED_NODES = [NodeStatus.PENDING, NodeStatus.RUNNING]


def enqueue(task, *args: Any):
    """Queue a task in the caller's transaction; once that commits, an idle worker wakes for it."""
    result = task.enqueue(*args)
    transaction.on_commit(lambda: broadcast.send(tasks.WORK_QUEUED))
    return result


def check_agent_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise BadAgent("name: a non-empty string is required")
    if len(name.strip()) > MAX_NAME_CHARS:
        raise BadAgent(f"name: at most {MAX_NAME_CHARS} characters")
    return name.strip()


def check_description(description: object) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        raise BadAgent("description: must be a string")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise BadAgent(f"description: at most {MAX_DESCRIPTION_CHARS:,} characters")
    return description.strip()


def checked_for_saving(graph: Any) -> dict[str, Any] | None:
    """The graph as it is saved, once it checks (GraphError otherwise); None for no graph."""
    if graph is None:
        return None
    check_graph(graph)
    return saved_form(graph)


GRAPH_REQUIRED = ("a graph is required: compose one from the blocks (list_blocks, GET /api/blocks/), check it "
                  "with validate_agent (POST /api/agents/validate/), then save it")


def do_create_agent(*, owner_id: Any, name: object, description: object = "", graph: Any = None,
                    installed_from: str = "") -> Agent:
    """Save a new agent with its graph as version 1. Nothing invents a graph: without one it is refused.

    Raises BadAgent, GraphError (nothing saved), QuotaExceeded or AgentExists (the owner has an agent of that name).
    """
    name, description = check_agent_name(name), check_description(description)
    if graph is None:
        raise GraphError([Problem(None, "graph", GRAPH_REQUIRED)])
    saved = checked_for_saving(graph)
    limit = copilot_setting("MAX_AGENTS_PER_USER")
    if Agent.objects.filter(owner_id=owner_id).count() >= limit:
        raise QuotaExceeded(f"you have {limit:,} agents, the most allowed: delete some first", code="too_many_agents")
    try:
        with transaction.atomic():
            agent = Agent.objects.create(owner_id=owner_id, name=name, description=description,
                                         status=AgentStatus.READY, installed_from=installed_from)
            AgentVersion.objects.create(agent=agent, number=1, graph=saved)
    except IntegrityError:
        existing = Agent.objects.filter(owner_id=owner_id, name=name).values_list("id", flat=True).first()
        raise AgentExists(f"you already have an agent named {name!r} (agent_id {existing}); "
                          "choose another name") from None
    return agent


def do_update_agent(*, agent: Agent, name: object = None, description: object = None, graph: Any = None) -> Agent:
    """Rename, redescribe, or save a new version of the graph (the agent is then `ready`)."""
    if name is not None:
        agent.name = check_agent_name(name)
    if description is not None:
        agent.description = check_description(description)
    saved = checked_for_saving(graph)
    try:
        with transaction.atomic():
            Agent.objects.select_for_update().filter(pk=agent.pk).first()  # one new version at a time
            if saved is not None:
                number = (agent.versions.aggregate(m=Max("number"))["m"] or 0) + 1
                AgentVersion.objects.create(agent=agent, number=number, graph=saved)
                agent.status, agent.build_error = AgentStatus.READY, ""
            agent.save(update_fields=["name", "description", "status", "build_error", "updated_at"])
    except IntegrityError:
        raise AgentExists(f"you already have an agent named {agent.name!r}; choose another name") from None
    return agent


def do_delete_agent(*, agent: Agent) -> None:
    """Delete the agent with its versions, runs, schedules and webhooks. A run in progress ends when its worker's
    heartbeat finds it gone."""
    agent.delete()


def do_enqueue_run(*, agent: Agent, inputs: Any = None, session_id: Any = None,
                   trigger: str = RunTrigger.API) -> AgentRun:
    """Check the inputs against the agent's newest version, then save the run and its task in one transaction.

    Raises AgentNotReady (no graph), GraphError (the saved graph no longer checks, e.g. a block was removed),
    InputsError or TooManyRuns (MAX_QUEUED_RUNS_PER_USER, whatever the trigger); nothing is queued then.
    """
    version = latest_version(agent)
    if agent.status == AgentStatus.FAILED or version is None:
        raise AgentNotReady(f"agent {agent.name!r} has no graph to run: {agent.build_error or 'its build failed'}")
    graph = check_graph(version.graph)
    inputs = check_run_inputs(graph, inputs)
    run_id = uuid.uuid4()
    with transaction.atomic():
        # The owner's row, locked: their runs are counted and added one caller at a time.
        get_user_model().objects.select_for_update().filter(pk=agent.owner_id).first()
        limit = copilot_setting("MAX_QUEUED_RUNS_PER_USER")
        if AgentRun.objects.filter(agent__owner_id=agent.owner_id,
                                   status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).count() >= limit:
            raise TooManyRuns(f"you have {limit} runs queued or running, the most allowed: wait for some to end")
        task_result = enqueue(tasks.run_agent, str(run_id))
        run = AgentRun.objects.create(id=run_id, agent=agent, version=version, session_id=session_id, inputs=inputs,
                                      trigger=trigger, task_id=str(task_result.id))
        AgentRunNode.objects.bulk_create([AgentRunNode(run=run, node_id=node.id, block=node.block.name, position=index)
                                          for index, node in enumerate(graph.nodes)])
    return run


def _outputs_so_far(run: AgentRun) -> dict[str, Any]:
    sinks = sink_ids(run.version.graph)
    return {node_id: output for node_id, output in AgentRunNode.objects.filter(
        run=run, node_id__in=sinks, status=NodeStatus.COMPLETED).values_list("node_id", "output")}


def _report(run: AgentRun) -> None:
    if run.session_id is not None:
        post_run_report(session_id=run.session_id, run_id=run.id, agent_id=run.agent_id, status=run.status,
                        outputs=run.outputs)


def do_cancel_run(*, run: AgentRun) -> AgentRun:
    """Cancel a queued or running run; once committed, the worker running it hears it and stops its nodes.

    Raises RunFinished when it has ended already.
    """
    now = timezone.now()
    with transaction.atomic():
        changed = AgentRun.objects.filter(pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
            status=RunStatus.CANCELLED, error="cancelled", finished_at=now)
        if not changed:
            raise RunFinished(f"the run has ended already ({AgentRun.objects.get(pk=run.pk).status})")
        AgentRunNode.objects.filter(run=run, status__in=UNFINISHED_NODES).update(
            status=NodeStatus.CANCELLED, error="cancelled", finished_at=now)
        run = AgentRun.objects.select_related("agent", "version").get(pk=run.pk)
        run.outputs = _outputs_so_far(run)
        run.save(update_fields=["outputs"])
        _report(run)
        transaction.on_commit(lambda: broadcast.send(tasks.RUN_CANCELLED, {"run_id": str(run.id)}))
        transaction.on_commit(lambda: observers.run_ended(RunStatus.CANCELLED))
    return run


# --- the worker's side of a run ---


@dataclass(frozen=True)
class RunPlan:
    """What a worker needs to execute a run, read when it starts it."""

    run_id: uuid.UUID
    agent_id: uuid.UUID
    session_id: uuid.UUID | None
    graph: dict[str, Any]
    inputs: dict[str, Any]


def do_start_run(*, run_id: uuid.UUID, process: str) -> RunPlan | None:
    """Mark a queued run as running in this process; None when it is not queued (cancelled before it started)."""
    now = timezone.now()
    if not AgentRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, process=process):
        return None
    run = AgentRun.objects.select_related("version").get(pk=run_id)
    return RunPlan(run_id=run.id, agent_id=run.agent_id, session_id=run.session_id, graph=run.version.graph,
                   inputs=run.inputs)


def do_touch_run(*, run_id: uuid.UUID) -> bool:
    """Refresh the run's heartbeat; False when it is no longer running (cancelled, or reaped)."""
    return AgentRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(heartbeat_at=timezone.now()) == 1


# What some nodes did, by node id: the fields to set (status, input, output, error, started_at, finished_at).
NodeUpdates = dict[str, dict[str, Any]]


def _apply_node_updates(run_id: uuid.UUID, updates: NodeUpdates) -> None:
    for node_id, fields in updates.items():
        # Only a node still pending or running changes: one a cancel has ended stays as the cancel left it.
        AgentRunNode.objects.filter(run_id=run_id, node_id=node_id, status__in=UNFINISHED_NODES).update(**fields)


def do_record_nodes(*, run_id: uuid.UUID, updates: NodeUpdates) -> None:
    """Save what some nodes did, in one transaction (one UPDATE per node)."""
    with transaction.atomic():
        _apply_node_updates(run_id, updates)


def do_finish_run(*, run_id: uuid.UUID, status: str, error: str = "", outputs: dict[str, Any] | None = None,
                  node_updates: NodeUpdates | None = None, stale_before: datetime | None = None) -> bool:
    """End a running run in one transaction: the nodes' last updates, its status, error and outputs (read from
    its nodes when None), and its report.

    Nodes still running end `failed` (interrupted), nodes never started `skipped`. With `stale_before` (the
    reaper) only a run whose heartbeat is older ends. Returns False when the run had ended already.
    """
    now = timezone.now()
    with transaction.atomic():
        _apply_node_updates(run_id, node_updates or {})
        running = AgentRun.objects.filter(pk=run_id, status=RunStatus.RUNNING)
        if stale_before is not None:
            running = running.filter(heartbeat_at__lt=stale_before)
        if not running.update(status=status, error=error, finished_at=now,
                              **({"outputs": outputs} if outputs is not None else {})):
            return False
        AgentRunNode.objects.filter(run_id=run_id, status=NodeStatus.RUNNING).update(
            status=NodeStatus.FAILED, error=f"interrupted: {error}", finished_at=now)
        AgentRunNode.objects.filter(run_id=run_id, status=NodeStatus.PENDING).update(
            status=NodeStatus.SKIPPED, error="not run: the run ended first", finished_at=now)
        run = AgentRun.objects.select_related("version").get(pk=run_id)
        if outputs is None:
            run.outputs = _outputs_so_far(run)
            run.save(update_fields=["outputs"])
        _report(run)
        transaction.on_commit(lambda: observers.run_ended(status))
        return True


def do_requeue_run(*, run_id: uuid.UUID, lost_task_id: str) -> bool:
    """Queue a queued run again under a new task: the worker that took `lost_task_id` died before starting it.

    False when the run was started, ended or requeued meanwhile. Starting is conditional, so it runs once.
    """
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().filter(pk=run_id, status=RunStatus.QUEUED,
                                                           task_id=lost_task_id).first()
        if run is None:
            return False
        run.task_id = str(enqueue(tasks.run_agent, str(run.id)).id)
        run.save(update_fields=["task_id"])
    return True


def do_install_library_agent(*, owner_id: Any, entry: LibraryAgent) -> Agent:
    """The owner's own copy of a library agent, version 1 its graph; named like it (then "… 2", "… 3"… when the
    owner has an agent of that name already). Raises QuotaExceeded or GraphError (a block it needs is gone)."""
    taken = set(Agent.objects.filter(owner_id=owner_id, name__startswith=entry.name).values_list("name", flat=True))
    name = entry.name
    number = 1
    while name in taken:
        number += 1
        name = f"{entry.name} {number}"
    return do_create_agent(owner_id=owner_id, name=name, description=entry.description, graph=entry.graph,
                           installed_from=entry.slug)

"""Reads of agents: what a user may see, and the shapes the API and the copilot tools return."""

from __future__ import annotations

import uuid
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Max, Q, QuerySet

from agents.graphs import declared_inputs
from agents.models import Agent, AgentRun, AgentRunNode, AgentVersion, LibraryAgent, RunStatus, Schedule, Webhook
from core.errors import NotFound

FOUND_AGENTS_LIMIT = 20


def _uuid_or_not_found(value: Any, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise NotFound(f"no such {what}") from None


def agents_of(user: AbstractBaseUser) -> QuerySet[Agent]:
    return Agent.objects.filter(owner=user)


def access_agent(*, user: AbstractBaseUser | None = None, owner_id: Any = None, agent_id: Any) -> Agent:
    """The owner's agent, or NotFound: another user's agent is not revealed to exist."""
    agent_uuid = _uuid_or_not_found(agent_id, "agent")
    owner = owner_id if owner_id is not None else getattr(user, "pk", None)
    if owner is None or (user is not None and not user.is_authenticated):
        raise NotFound("no such agent")
    agent = Agent.objects.filter(pk=agent_uuid, owner_id=owner).first()
    if agent is None:
        raise NotFound("no such agent")
    return agent


def access_run(*, user: AbstractBaseUser | None = None, owner_id: Any = None, run_id: Any) -> AgentRun:
    """The owner's run (with its agent and version), or NotFound."""
    run_uuid = _uuid_or_not_found(run_id, "run")
    owner = owner_id if owner_id is not None else getattr(user, "pk", None)
    if owner is None or (user is not None and not user.is_authenticated):
        raise NotFound("no such run")
    run = AgentRun.objects.select_related("agent", "version").filter(pk=run_uuid, agent__owner_id=owner).first()
    if run is None:
        raise NotFound("no such run")
    return run


@database_sync_to_async
def run_is_running(run_id: uuid.UUID) -> bool:
    return AgentRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).exists()


def latest_version(agent: Agent) -> AgentVersion | None:
    return agent.versions.order_by("-number").first()


def find_agents(*, owner_id: Any, query: str) -> list[Agent]:
    """The owner's agents whose name or description holds every word of the query (all of them for none)."""
    agents = Agent.objects.filter(owner_id=owner_id)
    for word in query.split():
        agents = agents.filter(Q(name__icontains=word) | Q(description__icontains=word))
    return list(agents.annotate(version_number=Max("versions__number")).order_by("name")[:FOUND_AGENTS_LIMIT])


def agent_summary(agent: Agent, *, version_number: int | None = None) -> dict[str, Any]:
    version = version_number if version_number is not None else getattr(agent, "version_number", None)
    return {"agent_id": str(agent.id), "name": agent.name, "description": agent.description,
            "status": agent.status, "version": version}


def agent_dict(agent: Agent, version: AgentVersion | None) -> dict[str, Any]:
    return {"id": str(agent.id), "name": agent.name, "description": agent.description, "status": agent.status,
            "build_error": agent.build_error, "version": version.number if version else None,
            "graph": version.graph if version else None,
            "inputs": declared_inputs(version.graph) if version else [],
            "next_run_at": _iso(agent.schedules.order_by("next_run_at").values_list("next_run_at", flat=True).first()),
            "created_at": agent.created_at.isoformat(),
            "updated_at": agent.updated_at.isoformat()}


def agents_with_run_counts(user: AbstractBaseUser) -> QuerySet[Agent]:
    return (agents_of(user).annotate(version_number=Max("versions__number"), run_count=Count("runs", distinct=True),
                                     last_run_at=Max("runs__queued_at"))
            .order_by("-updated_at", "id"))


def node_dict(node: AgentRunNode) -> dict[str, Any]:
    return {"id": node.node_id, "block": node.block, "status": node.status, "input": node.input,
            "output": node.output, "error": node.error,
            "started_at": node.started_at.isoformat() if node.started_at else None,
            "finished_at": node.finished_at.isoformat() if node.finished_at else None,
            "duration_ms": node.duration_ms}


def run_dict(run: AgentRun, nodes: list[AgentRunNode] | None = None) -> dict[str, Any]:
    """A run as the API and `get_agent_run` show it; `nodes` are read when not given."""
    nodes = nodes if nodes is not None else list(run.nodes.order_by("position"))
    return {"id": str(run.id), "run_id": str(run.id), "agent_id": str(run.agent_id),
            "version": run.version.number, "status": run.status, "trigger": run.trigger, "inputs": run.inputs, "outputs": run.outputs or {},
            "error": run.error, "session_id": str(run.session_id) if run.session_id else None,
            "queued_at": run.queued_at.isoformat(),
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "nodes": [node_dict(node) for node in nodes]}


def library_agents(*, query: str = "") -> list[LibraryAgent]:
    """The library's agents whose name or description holds every word of the query (all of them for none)."""
    found = LibraryAgent.objects.all()
    for word in query.split():
        found = found.filter(Q(name__icontains=word) | Q(description__icontains=word) | Q(slug__icontains=word))
    return list(found[:FOUND_AGENTS_LIMIT] if query.split() else found)


def access_library_agent(*, slug: Any) -> LibraryAgent:
    found = LibraryAgent.objects.filter(slug=slug).first() if isinstance(slug, str) else None
    if found is None:
        raise NotFound("no such library agent")
    return found


def library_dict(entry: LibraryAgent) -> dict[str, Any]:
    return {"slug": entry.slug, "name": entry.name, "description": entry.description,
            "inputs": declared_inputs(entry.graph, entry.input_descriptions), "graph": entry.graph}


def runs_of_agent(agent: Agent) -> QuerySet[AgentRun]:
    return agent.runs.select_related("version").order_by("-queued_at", "id")


def recent_runs_with_nodes(agent: Agent, *, limit: int = 10) -> list[AgentRun]:
    return list(runs_of_agent(agent).prefetch_related("nodes")[:limit])


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def schedule_dict(schedule: Schedule) -> dict[str, Any]:
    return {"id": str(schedule.id), "agent_id": str(schedule.agent_id), "cron": schedule.cron,
            "timezone": schedule.timezone, "inputs": schedule.inputs, "next_run_at": _iso(schedule.next_run_at),
            "last_run_at": _iso(schedule.last_run_at),
            "last_run_id": str(schedule.last_run_id) if schedule.last_run_id else None,
            "last_error": schedule.last_error, "created_at": _iso(schedule.created_at)}


def access_schedule(*, user: AbstractBaseUser, schedule_id: Any) -> Schedule:
    found = Schedule.objects.filter(pk=_uuid_or_not_found(schedule_id, "schedule"), agent__owner=user).first() \
        if user.is_authenticated else None
    if found is None:
        raise NotFound("no such schedule")
    return found


def access_webhook(*, user: AbstractBaseUser, webhook_id: Any) -> Webhook:
    found = Webhook.objects.filter(pk=_uuid_or_not_found(webhook_id, "webhook"), agent__owner=user).first() \
        if user.is_authenticated else None
    if found is None:
        raise NotFound("no such webhook")
    return found

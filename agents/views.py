"""Server-rendered pages: the user's agent library, and an agent with its graph and its runs."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from agents.actions import do_cancel_run, do_enqueue_run, do_install_library_agent
from agents.blocks import all_blocks
from agents.graphs import sink_ids
from agents.models import Agent, AgentRun, RunTrigger, Webhook
from agents.monitoring import WINDOWS, node_timeline, run_history, runs_over_time
from agents.schedules import do_create_schedule, do_delete_schedule
from agents.selectors import (
    access_agent,
    access_library_agent,
    access_run,
    access_schedule,
    access_webhook,
    agents_with_run_counts,
    latest_version,
    library_agents,
    library_dict,
    recent_runs_with_nodes,
)
from agents.webhooks import do_create_webhook, do_revoke_webhook, do_rotate_secret
from core.errors import ApplicationError

RUNS_SHOWN = 10


def _shown_json(value: Any) -> str:
    return "" if value is None else json.dumps(value, indent=1, ensure_ascii=False, default=str)


def _own_agent(request: HttpRequest, agent_id: Any) -> Agent:
    return access_agent(user=request.user, agent_id=agent_id)  # NotFound: the 404 page


def _graph_rows(graph: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The graph as two readable tables: nodes (with what feeds them) and links."""
    links = graph.get("links", [])
    outputs = set(sink_ids(graph))
    nodes = [{"id": node["id"], "block": node["block"], "input": _shown_json(node.get("input") or {}),
              "fed_by": [f"{link['from']}.{link['output']} → {link['input']}"
                         for link in links if link["to"] == node["id"]],
              "is_output": node["id"] in outputs}
             for node in graph["nodes"]]
    return nodes, links


def _run_rows(run: AgentRun) -> dict[str, Any]:
    nodes = []
    for node in run.nodes.all():
        offset = None
        if node.started_at and run.started_at:
            offset = round((node.started_at - run.started_at).total_seconds() * 1000)
        nodes.append({"node": node, "offset_ms": offset,
                      "input": _shown_json(node.input), "output": _shown_json(node.output)})
    duration = (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at else None
    return {"run": run, "nodes": nodes, "duration": duration, "outputs": _shown_json(run.outputs),
            "timeline": node_timeline(run, [row["node"] for row in nodes]),
            "inputs": _shown_json(run.inputs) if run.inputs else ""}


@login_required
@require_GET
def agent_list(request: HttpRequest) -> HttpResponse:
    return render(request, "agents/agent_list.html", {"agents": agents_with_run_counts(request.user)})


def _chart_window(request: HttpRequest) -> str:
    window = request.GET.get("window", "24h")
    return window if window in WINDOWS else "24h"


def _render_detail(request: HttpRequest, agent: Agent, *, inputs_text: str = "", status: int = 200,
                   schedule_form: dict[str, str] | None = None) -> HttpResponse:
    version = latest_version(agent)
    nodes, links = _graph_rows(version.graph) if version else ([], [])
    return render(request, "agents/agent_detail.html", {
        "agent": agent, "version": version, "nodes": nodes, "links": links, "inputs_text": inputs_text,
        "schedules": list(agent.schedules.order_by("next_run_at", "id")),
        "history": run_history(agent),
        "chart": runs_over_time(agent, now=timezone.now(), window=_chart_window(request)),
        "webhooks": [{"webhook": hook, "url": _webhook_url(request, hook)}
                     for hook in agent.webhooks.filter(revoked_at__isnull=True).order_by("-created_at")],
        "schedule_form": schedule_form or {"cron": "", "timezone": "UTC", "inputs": ""},
        "runs": [_run_rows(run) for run in recent_runs_with_nodes(agent, limit=RUNS_SHOWN)],
    }, status=status)


@login_required
@require_GET
def agent_detail(request: HttpRequest, agent_id: Any) -> HttpResponse:
    return _render_detail(request, _own_agent(request, agent_id))


@login_required
@require_POST
def agent_run(request: HttpRequest, agent_id: Any) -> HttpResponse:
    agent = _own_agent(request, agent_id)
    inputs_text = request.POST.get("inputs", "").strip()
    try:
        try:
            inputs = json.loads(inputs_text) if inputs_text else None
        except ValueError as exc:
            raise ApplicationError(f"inputs: not JSON: {exc}", code="bad_inputs") from None
        run = do_enqueue_run(agent=agent, inputs=inputs, trigger=RunTrigger.PAGE)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return _render_detail(request, agent, inputs_text=inputs_text, status=400)
    messages.success(request, f"Run {run.id} queued.")
    return redirect("agents:detail", agent_id=agent.id)


def _json_or_none(text: str, what: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError as exc:
        raise ApplicationError(f"{what}: not JSON: {exc}", code="bad_inputs") from None


@login_required
@require_POST
def schedule_create(request: HttpRequest, agent_id: Any) -> HttpResponse:
    agent = _own_agent(request, agent_id)
    form = {name: request.POST.get(name, "").strip() for name in ("cron", "timezone", "inputs")}
    try:
        schedule = do_create_schedule(agent=agent, cron=form["cron"], timezone_name=form["timezone"] or None,
                                      inputs=_json_or_none(form["inputs"], "inputs"))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return _render_detail(request, agent, status=400, schedule_form=form)
    messages.success(request, f"Scheduled: next run {schedule.next_run_at:%Y-%m-%d %H:%M} UTC.")
    return redirect("agents:detail", agent_id=agent.id)


@login_required
@require_POST
def schedule_delete(request: HttpRequest, schedule_id: Any) -> HttpResponse:
    schedule = access_schedule(user=request.user, schedule_id=schedule_id)  # NotFound: the 404 page
    agent_id = schedule.agent_id
    do_delete_schedule(schedule=schedule)
    messages.success(request, "Schedule deleted.")
    return redirect("agents:detail", agent_id=agent_id)


def _webhook_url(request: HttpRequest, webhook: Webhook) -> str:
    return request.build_absolute_uri(reverse("agents:webhook-receive", kwargs={"webhook_id": webhook.id}))


def _back_to_webhooks(agent_id: Any) -> HttpResponse:
    return redirect(reverse("agents:detail", kwargs={"agent_id": agent_id}) + "#webhooks")


@login_required
@require_POST
def webhook_create(request: HttpRequest, agent_id: Any) -> HttpResponse:
    agent = _own_agent(request, agent_id)
    try:
        webhook = do_create_webhook(agent=agent)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Webhook made. Its secret, shown this once: {webhook.secret}")
    return _back_to_webhooks(agent.id)


@login_required
@require_POST
def webhook_rotate(request: HttpRequest, webhook_id: Any) -> HttpResponse:
    webhook = access_webhook(user=request.user, webhook_id=webhook_id)
    try:
        webhook = do_rotate_secret(webhook=webhook)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"New secret, shown this once: {webhook.secret}")
    return _back_to_webhooks(webhook.agent_id)


@login_required
@require_POST
def webhook_revoke(request: HttpRequest, webhook_id: Any) -> HttpResponse:
    webhook = access_webhook(user=request.user, webhook_id=webhook_id)
    do_revoke_webhook(webhook=webhook)
    messages.success(request, "Webhook revoked: its URL answers 404 from now on.")
    return _back_to_webhooks(webhook.agent_id)


def _render_builder(request: HttpRequest, agent: Agent | None) -> HttpResponse:
    version = latest_version(agent) if agent else None
    meta = {"id": str(agent.id), "name": agent.name, "description": agent.description,
            "version": version.number if version else None, "graph": version.graph if version else None} \
        if agent else {"id": None, "name": "", "description": "", "version": None, "graph": None}
    return render(request, "agents/builder.html", {"agent": agent, "agent_meta": meta,
                                                   "blocks": [block.describe() for block in all_blocks()]})


@login_required
@require_GET
def agent_new(request: HttpRequest) -> HttpResponse:
    return _render_builder(request, None)


@login_required
@require_GET
def agent_edit(request: HttpRequest, agent_id: Any) -> HttpResponse:
    return _render_builder(request, _own_agent(request, agent_id))


@login_required
@require_GET
def library(request: HttpRequest) -> HttpResponse:
    return render(request, "agents/library.html", {"entries": [library_dict(entry) for entry in library_agents()]})


@login_required
@require_POST
def library_install(request: HttpRequest, slug: str) -> HttpResponse:
    entry = access_library_agent(slug=slug)  # NotFound: the 404 page
    try:
        agent = do_install_library_agent(owner_id=request.user.pk, entry=entry)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("agents:library")
    messages.success(request, f"Installed {agent.name!r}: your own copy.")
    return redirect("agents:detail", agent_id=agent.id)


@login_required
@require_POST
def run_cancel(request: HttpRequest, run_id: Any) -> HttpResponse:
    run = access_run(user=request.user, run_id=run_id)  # NotFound: the 404 page
    try:
        run = do_cancel_run(run=run)
        messages.success(request, f"Run {run.id} cancelled.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("agents:detail", agent_id=run.agent_id)

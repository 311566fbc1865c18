"""The agents JSON API: agents, their runs, the blocks. Thin views; a user sees only their own agents and runs."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from agents import serializers as s
from agents.actions import (
    do_cancel_run,
    do_create_agent,
    do_delete_agent,
    do_enqueue_run,
    do_install_library_agent,
    do_update_agent,
)
from agents.blocks import all_blocks
from agents.graphs import check_graph
from agents.schedules import do_create_schedule, do_delete_schedule
from agents.selectors import (
    access_agent,
    access_library_agent,
    access_run,
    access_schedule,
    access_webhook,
    agent_dict,
    agents_with_run_counts,
    latest_version,
    library_agents,
    library_dict,
    run_dict,
    runs_of_agent,
    schedule_dict,
)
from agents.webhooks import do_create_webhook, do_revoke_webhook, do_rotate_secret, webhook_dict
from core.api.schema import Pagination, error_responses

ERROR_TEXTS = {400: "Bad input: the message says what is wrong (every problem of a graph; bad_cron, bad_inputs)",
               404: "No such agent or run (or another user's)", 409: "Conflicts with the agent's or run's state"}


def errors(*codes: int) -> dict:
    return error_responses(*codes, texts=ERROR_TEXTS)


def summary_dict(agent) -> dict:
    return {"id": str(agent.id), "name": agent.name, "description": agent.description, "status": agent.status,
            "version": agent.version_number, "run_count": agent.run_count,
            "last_run_at": agent.last_run_at.isoformat() if agent.last_run_at else None,
            "created_at": agent.created_at.isoformat(), "updated_at": agent.updated_at.isoformat()}


class BlockListView(GenericAPIView):
    serializer_class = s.BlockListSerializer

    @extend_schema(summary="The blocks agents are made of, with their input and output schemas",
                   responses={200: s.BlockListSerializer, **errors()})
    def get(self, request):
        return Response({"blocks": [block.describe() for block in all_blocks()]})


class AgentListView(GenericAPIView):
    pagination_class = Pagination
    serializer_class = s.AgentSummarySerializer

    def get_queryset(self):
        return agents_with_run_counts(self.request.user)

    @extend_schema(summary="Your agents, most recently changed first",
                   responses={200: s.AgentSummarySerializer(many=True), **errors(400)})
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([summary_dict(agent) for agent in page])

    @extend_schema(summary="Create an agent from its graph (version 1)", request=s.AgentCreateSerializer,
                   description="The graph is checked as POST /api/agents/validate/ checks it; without one, or with "
                               "problems, the answer is 400 `bad_graph` with every problem.",
                   responses={201: s.AgentSerializer, 400: s.GraphProblemsSerializer, **errors(409, 413, 415, 429)})
    def post(self, request):
        serializer = s.AgentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        agent = do_create_agent(owner_id=request.user.pk, name=data["name"], description=data["description"],
                                graph=data.get("graph"))
        return Response(agent_dict(agent, latest_version(agent)), status=status.HTTP_201_CREATED)


class ValidateView(GenericAPIView):
    serializer_class = s.GraphSerializer

    @extend_schema(summary="Check a graph as saving it would, naming the node and field of each problem",
                   request=s.GraphSerializer,
                   responses={200: s.ValidSerializer, 400: s.GraphProblemsSerializer, **errors(413, 415)})
    def post(self, request):
        serializer = s.GraphSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        check_graph(serializer.validated_data["graph"])  # GraphError: the 400 with every problem
        return Response({"ok": True})


class LibraryListView(GenericAPIView):
    pagination_class = None  # PROTOCOL §10: a plain list (the library is small and curated)
    serializer_class = s.LibraryAgentSerializer

    @extend_schema(summary="The library: ready-made agents, each runnable offline",
                   responses={200: s.LibraryAgentSerializer(many=True), **errors()})
    def get(self, request):
        return Response([library_dict(entry) for entry in library_agents()])


class LibraryInstallView(GenericAPIView):
    serializer_class = s.InstalledSerializer

    @extend_schema(summary="Install a library agent: your own copy, to change and run", request=None,
                   responses={201: s.InstalledSerializer, **errors(400, 429)})
    def post(self, request, slug):
        agent = do_install_library_agent(owner_id=request.user.pk, entry=access_library_agent(slug=slug))
        return Response({"agent_id": str(agent.id)}, status=status.HTTP_201_CREATED)


class AgentDetailView(GenericAPIView):
    serializer_class = s.AgentSerializer

    @extend_schema(summary="The agent with its newest graph", responses={200: s.AgentSerializer, **errors()})
    def get(self, request, agent_id):
        agent = access_agent(user=request.user, agent_id=agent_id)
        return Response(agent_dict(agent, latest_version(agent)))

    @extend_schema(summary="Rename or redescribe the agent, or save a new version of its graph",
                   description="A graph is checked as POST /api/agents/validate/ checks it (400 `bad_graph`).",
                   request=s.AgentUpdateSerializer, responses={200: s.AgentSerializer, **errors(400, 409, 413, 415)})
    def patch(self, request, agent_id):
        agent = access_agent(user=request.user, agent_id=agent_id)
        serializer = s.AgentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        agent = do_update_agent(agent=agent, name=data.get("name"), description=data.get("description"),
                                graph=data.get("graph"))
        return Response(agent_dict(agent, latest_version(agent)))

    @extend_schema(summary="Delete the agent, with its runs, schedules and webhooks", responses={204: None,
                                                                                                  **errors()})
    def delete(self, request, agent_id):
        do_delete_agent(agent=access_agent(user=request.user, agent_id=agent_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AgentRunsView(GenericAPIView):
    pagination_class = Pagination
    serializer_class = s.RunSerializer

    @extend_schema(summary="The agent's runs, newest first", responses={200: s.RunSerializer(many=True),
                                                                        **errors(400)})
    def get(self, request, agent_id):
        agent = access_agent(user=request.user, agent_id=agent_id)
        page = self.paginate_queryset(runs_of_agent(agent).prefetch_related("nodes"))
        return self.get_paginated_response([run_dict(run, list(run.nodes.all())) for run in page])

    @extend_schema(summary="Run the agent's newest version in the background", request=s.RunCreateSerializer,
                   description="Answers at once with the queued run; GET /api/runs/<id>/ follows it.",
                   responses={202: s.RunSerializer, **errors(400, 409, 413, 415)})
    def post(self, request, agent_id):
        agent = access_agent(user=request.user, agent_id=agent_id)
        serializer = s.RunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = do_enqueue_run(agent=agent, inputs=serializer.validated_data.get("inputs"))
        return Response(run_dict(run), status=status.HTTP_202_ACCEPTED)


class RunDetailView(GenericAPIView):
    serializer_class = s.RunSerializer

    @extend_schema(summary="A run: status, outputs, and each node's input, output, status and timing",
                   responses={200: s.RunSerializer, **errors()})
    def get(self, request, run_id):
        return Response(run_dict(access_run(user=request.user, run_id=run_id)))


class RunCancelView(GenericAPIView):
    serializer_class = s.RunSerializer

    @extend_schema(summary="Cancel a queued or running run", request=None,
                   description="A running run's worker stops its nodes at its next heartbeat. 409 once it has ended.",
                   responses={200: s.RunSerializer, **errors(409)})
    def post(self, request, run_id):
        return Response(run_dict(do_cancel_run(run=access_run(user=request.user, run_id=run_id))))


class AgentSchedulesView(GenericAPIView):
    pagination_class = Pagination
    serializer_class = s.ScheduleSerializer

    @extend_schema(summary="The agent's schedules, the next due first",
                   responses={200: s.ScheduleSerializer(many=True), **errors(400)})
    def get(self, request, agent_id):
        agent = access_agent(user=request.user, agent_id=agent_id)
        page = self.paginate_queryset(agent.schedules.order_by("next_run_at", "id"))
        return self.get_paginated_response([schedule_dict(schedule) for schedule in page])

    @extend_schema(summary="Run the agent at each time of a cron expression", request=s.ScheduleCreateSerializer,
                   description="A bad cron is `400 bad_cron`, an unknown timezone `400 bad_timezone`, inputs that "
                               "do not fit the agent `400 bad_inputs`. Times missed while no worker ran are run once.",
                   responses={201: s.ScheduleSerializer, **errors(400, 413, 415, 429)})
    def post(self, request, agent_id):
        agent = access_agent(user=request.user, agent_id=agent_id)
        serializer = s.ScheduleCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        schedule = do_create_schedule(agent=agent, cron=data["cron"], inputs=data.get("inputs"),
                                      timezone_name=data.get("timezone"))
        return Response(schedule_dict(schedule), status=status.HTTP_201_CREATED)


class ScheduleDetailView(GenericAPIView):
    serializer_class = s.ScheduleSerializer

    @extend_schema(summary="A schedule", responses={200: s.ScheduleSerializer, **errors()})
    def get(self, request, schedule_id):
        return Response(schedule_dict(access_schedule(user=request.user, schedule_id=schedule_id)))

    @extend_schema(summary="Delete a schedule", responses={204: None, **errors()})
    def delete(self, request, schedule_id):
        do_delete_schedule(schedule=access_schedule(user=request.user, schedule_id=schedule_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _webhook_url(request, webhook) -> str:
    return request.build_absolute_uri(reverse("agents:webhook-receive", kwargs={"webhook_id": webhook.id}))


class AgentWebhooksView(GenericAPIView):
    pagination_class = Pagination
    serializer_class = s.WebhookSerializer

    @extend_schema(summary="The agent's webhooks (their secrets are not shown again)",
                   responses={200: s.WebhookSerializer(many=True), **errors(400)})
    def get(self, request, agent_id):
        agent = access_agent(user=request.user, agent_id=agent_id)
        page = self.paginate_queryset(agent.webhooks.order_by("-created_at", "id"))
        return self.get_paginated_response([webhook_dict(hook, url=_webhook_url(request, hook)) for hook in page])

    @extend_schema(summary="A webhook of the agent: a URL and a secret, shown this once", request=None,
                   responses={201: s.WebhookSecretSerializer, **errors(429)})
    def post(self, request, agent_id):
        webhook = do_create_webhook(agent=access_agent(user=request.user, agent_id=agent_id))
        return Response(webhook_dict(webhook, url=_webhook_url(request, webhook), with_secret=True),
                        status=status.HTTP_201_CREATED)


class WebhookDetailView(GenericAPIView):
    serializer_class = s.WebhookSerializer

    @extend_schema(summary="A webhook", responses={200: s.WebhookSerializer, **errors()})
    def get(self, request, webhook_id):
        webhook = access_webhook(user=request.user, webhook_id=webhook_id)
        return Response(webhook_dict(webhook, url=_webhook_url(request, webhook)))

    @extend_schema(summary="Revoke a webhook: its URL answers 404 from now on", responses={204: None, **errors()})
    def delete(self, request, webhook_id):
        do_revoke_webhook(webhook=access_webhook(user=request.user, webhook_id=webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateView(GenericAPIView):
    serializer_class = s.WebhookSecretSerializer

    @extend_schema(summary="A new secret for the webhook, shown this once; the old one signs nothing any more",
                   request=None, responses={200: s.WebhookSecretSerializer, **errors()})
    def post(self, request, webhook_id):
        webhook = do_rotate_secret(webhook=access_webhook(user=request.user, webhook_id=webhook_id))
        return Response(webhook_dict(webhook, url=_webhook_url(request, webhook), with_secret=True))

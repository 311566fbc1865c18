"""Request validation and the documented response shapes of the agents API (business rules live in actions)."""

from __future__ import annotations

from rest_framework import serializers

from agents.actions import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS
from agents.models import AgentStatus, NodeStatus, RunStatus, RunTrigger
from core.api.serializers import StrictSerializer, TextField


class AgentCreateSerializer(StrictSerializer):
    name = TextField(max_length=MAX_NAME_CHARS)
    description = TextField(max_length=MAX_DESCRIPTION_CHARS, required=False, allow_blank=True, default="")
    graph = serializers.JSONField(required=False, help_text="PROTOCOL §6: {nodes: [...], links: [...]}; required "
                                                             "(without one: 400 bad_graph)")


class GraphSerializer(StrictSerializer):
    graph = serializers.JSONField(help_text="PROTOCOL §6: {nodes: [...], links: [...]}")


class ProblemSerializer(serializers.Serializer):
    node = serializers.CharField(allow_null=True, help_text="the node the problem is in, or a link's source")
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class GraphProblemsSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    problems = ProblemSerializer(many=True, required=False, help_text="with code bad_graph or bad_inputs")


class ValidSerializer(serializers.Serializer):
    ok = serializers.BooleanField()


class InputSerializer(serializers.Serializer):
    node = serializers.CharField()
    input = serializers.CharField()
    type = serializers.CharField(help_text="a JSON Schema type name, or any")
    description = serializers.CharField(allow_blank=True)
    default = serializers.JSONField(required=False)


class LibraryAgentSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    inputs = InputSerializer(many=True)
    graph = serializers.JSONField()


class InstalledSerializer(serializers.Serializer):
    agent_id = serializers.UUIDField()


class AgentUpdateSerializer(StrictSerializer):
    name = TextField(max_length=MAX_NAME_CHARS, required=False)
    description = TextField(max_length=MAX_DESCRIPTION_CHARS, required=False, allow_blank=True)
    graph = serializers.JSONField(required=False, help_text="saved as a new version")


class RunCreateSerializer(StrictSerializer):
    inputs = serializers.JSONField(required=False, help_text="{node id: {input: value}}, over the nodes' own inputs")


class AgentSummarySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=AgentStatus.choices)
    version = serializers.IntegerField(allow_null=True)
    run_count = serializers.IntegerField()
    last_run_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class AgentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=AgentStatus.choices)
    build_error = serializers.CharField(allow_blank=True)
    version = serializers.IntegerField(allow_null=True)
    graph = serializers.JSONField(allow_null=True)
    inputs = InputSerializer(many=True)
    next_run_at = serializers.DateTimeField(allow_null=True, help_text="the soonest time a schedule runs it")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class RunNodeSerializer(serializers.Serializer):
    id = serializers.CharField()
    block = serializers.CharField()
    status = serializers.ChoiceField(choices=NodeStatus.choices)
    input = serializers.JSONField(allow_null=True)
    output = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)


class RunSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    run_id = serializers.UUIDField()
    agent_id = serializers.UUIDField()
    version = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    trigger = serializers.ChoiceField(choices=RunTrigger.choices)
    inputs = serializers.JSONField()
    outputs = serializers.JSONField(help_text="{node id: output} of the nodes no link leaves")
    error = serializers.CharField(allow_blank=True)
    session_id = serializers.UUIDField(allow_null=True)
    queued_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    nodes = RunNodeSerializer(many=True)


class ScheduleCreateSerializer(StrictSerializer):
    cron = serializers.JSONField(allow_null=True, help_text="five fields: minute hour day-of-month month day-of-week (croniter)")
    inputs = serializers.JSONField(required=False, help_text="{node id: {input: value}}, the inputs of each run")
    timezone = serializers.JSONField(required=False, help_text="an IANA name; default UTC")


class ScheduleSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    agent_id = serializers.UUIDField()
    cron = serializers.CharField()
    timezone = serializers.CharField()
    inputs = serializers.JSONField()
    next_run_at = serializers.DateTimeField()
    last_run_at = serializers.DateTimeField(allow_null=True)
    last_run_id = serializers.UUIDField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True, help_text="why the last time queued no run (a quota…)")
    created_at = serializers.DateTimeField()


class WebhookSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    agent_id = serializers.UUIDField()
    url = serializers.URLField(help_text="POST a signed JSON object here (the run's inputs)")
    created_at = serializers.DateTimeField()
    rotated_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class WebhookSecretSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="shown this once: sign with HMAC-SHA256 of \"<timestamp>.<body>\"")


class BlockSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    input_schema = serializers.JSONField()
    output_schema = serializers.JSONField()


class BlockListSerializer(serializers.Serializer):
    blocks = BlockSerializer(many=True)

"""Request validation and the documented shapes of API responses."""

from __future__ import annotations

from rest_framework import serializers

from chat.models import TurnStatus
from core.api.serializers import StrictSerializer, TextField


class SessionCreateSerializer(StrictSerializer):
    title = TextField(max_length=200, required=False, default="New chat")


class SessionRenameSerializer(StrictSerializer):
    title = TextField(max_length=200)


class MessageCreateSerializer(StrictSerializer):
    text = TextField(trim_whitespace=False, allow_blank=True)
    client_message_id = serializers.UUIDField(required=False)


class SessionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class TurnSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=TurnStatus.choices)
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    user_message_id = serializers.UUIDField()
    assistant_message_id = serializers.UUIDField()
    error = serializers.CharField(allow_blank=True)


class ToolCallSerializer(serializers.Serializer):
    toolCallId = serializers.CharField()
    toolName = serializers.CharField()
    status = serializers.CharField()
    input = serializers.JSONField()
    output = serializers.JSONField(allow_null=True)
    errorText = serializers.CharField(allow_blank=True)
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class TurnDetailSerializer(TurnSerializer):
    tool_calls = ToolCallSerializer(many=True)


class MessagePartSerializer(serializers.Serializer):
    """A part of an AI SDK UIMessage: `text`, `reasoning` or `dynamic-tool`."""

    type = serializers.CharField()
    text = serializers.CharField(required=False)
    toolCallId = serializers.CharField(required=False)
    toolName = serializers.CharField(required=False)
    state = serializers.CharField(required=False)
    input = serializers.JSONField(required=False)
    output = serializers.JSONField(required=False)
    errorText = serializers.CharField(required=False)
    startedAt = serializers.DateTimeField(required=False)


class MessageSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    role = serializers.ChoiceField(choices=["user", "assistant"])
    parts = MessagePartSerializer(many=True)
    created_at = serializers.DateTimeField()
    turn_status = serializers.ChoiceField(choices=TurnStatus.choices, required=False,
                                          help_text="Assistant messages: how their turn ended (or that it runs).")
    error = serializers.CharField(required=False, allow_blank=True,
                                  help_text="Assistant messages: what went wrong, when their turn failed.")


class SessionSnapshotSerializer(SessionSerializer):
    messages = MessageSerializer(many=True)
    active_turn = TurnSerializer(allow_null=True)
    last_seq = serializers.IntegerField(min_value=0)


class TurnAcceptedSerializer(serializers.Serializer):
    turn_id = serializers.UUIDField()
    message_id = serializers.UUIDField()


class StopAcceptedSerializer(serializers.Serializer):
    stopping = serializers.BooleanField()

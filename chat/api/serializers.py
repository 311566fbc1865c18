"""Request validation and the documented shapes of API responses."""

from __future__ import annotations

from rest_framework import serializers

from chat.models import TurnStatus
from core.api.serializers import StrictSerializer, TextField


class SessionCreateSerializer(StrictSerializer):
    title = TextField(max_length=200, required=False, default="New chat")


class SessionUpdateSerializer(StrictSerializer):
    title = TextField(max_length=200, required=False)
    approval_mode = serializers.ChoiceField(choices=["auto", "ask"], required=False,
                                            help_text='"ask": every tool call the policy allows waits for you')

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if not attrs:
            raise serializers.ValidationError("give a title or an approval_mode")
        return attrs


class MessageCreateSerializer(StrictSerializer):
    text = TextField(trim_whitespace=False, allow_blank=True)
    client_message_id = serializers.UUIDField(required=False)
    queue = serializers.BooleanField(required=False, default=False,
                                     help_text="While a turn runs: wait for it to end instead of a 409")


class DecisionSerializer(StrictSerializer):
    decision = serializers.ChoiceField(choices=["allow", "deny"])


class DecisionSerializerOut(serializers.Serializer):
    approval_id = serializers.UUIDField()
    decision = serializers.ChoiceField(choices=["allow", "deny"])


class SessionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    approval_mode = serializers.ChoiceField(choices=["auto", "ask"])


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


class PendingApprovalSerializer(serializers.Serializer):
    approval_id = serializers.UUIDField()
    toolCallId = serializers.CharField()
    toolName = serializers.CharField()
    input = serializers.JSONField()
    expires_at = serializers.DateTimeField()


class ActiveTurnSerializer(TurnSerializer):
    pending_approvals = PendingApprovalSerializer(many=True)


class QueuedTurnSerializer(serializers.Serializer):
    turn_id = serializers.UUIDField()
    message_id = serializers.UUIDField()
    text = serializers.CharField()


class SessionSnapshotSerializer(SessionSerializer):
    messages = MessageSerializer(many=True)
    active_turn = ActiveTurnSerializer(allow_null=True)
    queued = QueuedTurnSerializer(many=True)
    last_seq = serializers.IntegerField(min_value=0)


class TurnAcceptedSerializer(serializers.Serializer):
    turn_id = serializers.UUIDField()
    message_id = serializers.UUIDField()
    queued = serializers.BooleanField(required=False, help_text="true: it waits for the running turn to end")


class StopAcceptedSerializer(serializers.Serializer):
    stopping = serializers.BooleanField()

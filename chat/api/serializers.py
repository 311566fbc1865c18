"""Request validation and the documented shapes of API responses."""

from __future__ import annotations

from rest_framework import serializers

from chat.models import TurnStatus
from core.api.serializers import StrictSerializer, TextField


class SessionCreateSerializer(StrictSerializer):
    title = TextField(max_length=200, required=False,
                      help_text='Without one the chat is "New chat" until a title is written after its first turn.')


class SessionUpdateSerializer(StrictSerializer):
    title = TextField(max_length=200, required=False)
    approval_mode = serializers.ChoiceField(choices=["auto", "ask"], required=False,
                                            help_text='"ask": every tool call the policy allows waits for you')
    model = TextField(max_length=100, required=False, help_text="One of GET /api/models/; used from the next turn.")
    active_leaf = serializers.UUIDField(required=False, help_text="A message of the session: show its branch.")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if not attrs:
            raise serializers.ValidationError("give at least one of title, approval_mode, model, active_leaf")
        return attrs


class MessageCreateSerializer(StrictSerializer):
    text = TextField(trim_whitespace=False, allow_blank=True)
    client_message_id = serializers.UUIDField(required=False)
    queue = serializers.BooleanField(required=False, default=False,
                                     help_text="While a turn runs: wait for it to end instead of a 409")
    edit_of = serializers.UUIDField(required=False, help_text="A user message of the session: this message is a new "
                                                              "version of it, answered after what it followed.")


class DecisionSerializer(StrictSerializer):
    decision = serializers.ChoiceField(choices=["allow", "deny"])


class DecisionSerializerOut(serializers.Serializer):
    approval_id = serializers.UUIDField()
    decision = serializers.ChoiceField(choices=["allow", "deny"])


class RegenerateSerializer(StrictSerializer):
    client_message_id = serializers.UUIDField(required=False)


class UsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_read_input_tokens = serializers.IntegerField()
    cache_creation_input_tokens = serializers.IntegerField()
    cost_usd = serializers.FloatField()


class UsageDaySerializer(UsageSerializer):
    date = serializers.DateField()
    turns = serializers.IntegerField()


class UserUsageSerializer(serializers.Serializer):
    today = UsageDaySerializer()
    budget_usd = serializers.FloatField(allow_null=True, help_text="USER_DAILY_BUDGET_USD; null: no budget")
    remaining_usd = serializers.FloatField(allow_null=True)
    days = UsageDaySerializer(many=True)


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    label = serializers.CharField()
    default = serializers.BooleanField()


class SessionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    approval_mode = serializers.ChoiceField(choices=["auto", "ask"])
    model = serializers.CharField(help_text="The model of the session's next turn")


class MatchSerializer(serializers.Serializer):
    message_id = serializers.UUIDField(allow_null=True, help_text="null when only the title matched")
    snippet = serializers.CharField()


class SessionMatchSerializer(SessionSerializer):
    match = MatchSerializer(required=False, help_text="With q: where the session matched")


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


class BranchSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Its place among its versions, from 0")
    count = serializers.IntegerField()
    siblings = serializers.ListField(child=serializers.UUIDField(), help_text="Every version, oldest first")


class MessageSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    role = serializers.ChoiceField(choices=["user", "assistant"])
    parts = MessagePartSerializer(many=True)
    created_at = serializers.DateTimeField()
    turn_status = serializers.ChoiceField(choices=TurnStatus.choices, required=False,
                                          help_text="Assistant messages: how their turn ended (or that it runs).")
    error = serializers.CharField(required=False, allow_blank=True,
                                  help_text="Assistant messages: what went wrong, when their turn failed.")
    usage = UsageSerializer(required=False, allow_null=True, help_text="Assistant messages: what the answer cost.")
    branch = BranchSerializer()


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
    messages = MessageSerializer(many=True, help_text="The active branch, oldest first")
    active_leaf = serializers.UUIDField(allow_null=True)
    usage = UsageSerializer(help_text="Every answer of the session, on every branch")
    active_turn = ActiveTurnSerializer(allow_null=True)
    queued = QueuedTurnSerializer(many=True, help_text="Messages waiting for their turn, oldest first")
    last_seq = serializers.IntegerField(min_value=0)


class TurnAcceptedSerializer(serializers.Serializer):
    turn_id = serializers.UUIDField()
    message_id = serializers.UUIDField()
    queued = serializers.BooleanField(required=False, help_text="true: it waits for the running turn to end")


class StopAcceptedSerializer(serializers.Serializer):
    stopping = serializers.BooleanField()

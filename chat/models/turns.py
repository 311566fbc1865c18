"""Turns (one user message and everything the copilot does about it) and their tool calls."""

import uuid

from django.db import models
from django.db.models import Q

from chat.models.sessions import ChatSession, Message


class TurnStatus(models.TextChoices):
    QUEUED = "queued"  # waits for the turn before it to end (PROTOCOL §7)
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class Turn(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="turns")
    # A user message may be answered more than once (regenerate, retry): each answer has a turn of its own.
    user_message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="prompted_turns")
    assistant_message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="answered_turn")
    status = models.CharField(max_length=16, choices=TurnStatus.choices, default=TurnStatus.RUNNING)
    queued_at = models.DateTimeField(null=True, blank=True)  # when it was queued; its place in the queue
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(auto_now_add=True)
    # hostname:pid of the process that runs the turn; "" until one has claimed it (chat.actions.turns).
    process = models.CharField(max_length=100, blank=True, default="")
    start_seq = models.PositiveBigIntegerField(null=True, blank=True)  # the seq of its `start` event
    seq = models.PositiveBigIntegerField(default=0)  # the seq of its `finish`, once ended
    # What operators chart (the dashboard): when the first text or reasoning came, how often the CLI retried the
    # model, how many calls were denied.
    first_token_at = models.DateTimeField(null=True, blank=True)
    model_retries = models.PositiveIntegerField(default=0)
    policy_denials = models.PositiveIntegerField(default=0)
    # The request that started it (a send's, or a regenerate's): the same id again starts nothing new.
    client_message_id = models.UUIDField(null=True, blank=True)
    # Where its conversation lives in the SDK's store: the SDK session, and its last transcript entry once the
    # turn ended, which a branch from this turn resumes at.
    sdk_session_id = models.CharField(max_length=64, blank=True, default="")
    sdk_leaf_uuid = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["session"], condition=Q(status="running"),
                                    name="one_running_turn_per_session"),
            models.UniqueConstraint(fields=["session", "client_message_id"], condition=Q(client_message_id__isnull=False),
                                    name="turn_client_id_unique"),
        ]
        # started_at: the dashboard's windows (ops.selectors).
        indexes = [models.Index(fields=["status", "heartbeat_at"]), models.Index(fields=["started_at"])]

    def __str__(self) -> str:
        return f"turn {self.id} ({self.status})"

    @property
    def is_running(self) -> bool:
        return self.status == TurnStatus.RUNNING


class ToolCallStatus(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class ToolCall(models.Model):
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="tool_calls")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="tool_calls")
    tool_use_id = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    error_text = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=ToolCallStatus.choices, default=ToolCallStatus.RUNNING)
    # Orders this call among the message's text parts.
    part_index = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    input_seq = models.PositiveBigIntegerField(default=0)
    output_seq = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["message", "part_index"]
        constraints = [
            models.UniqueConstraint(fields=["message", "tool_use_id"], name="tool_call_unique_per_message"),
        ]
        indexes = [models.Index(fields=["status", "started_at"]), models.Index(fields=["started_at"])]

    def __str__(self) -> str:
        return f"{self.name} {self.tool_use_id} ({self.status})"

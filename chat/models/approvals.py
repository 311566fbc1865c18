"""Approvals (PROTOCOL §7): a tool call that waits for a person's decision before it runs."""

import uuid

from django.db import models

from chat.models.turns import Turn


class ApprovalDecision(models.TextChoices):
    ALLOW = "allow"
    DENY = "deny"


class DecidedBy(models.TextChoices):
    USER = "user"
    TIMEOUT = "timeout"
    STOP = "stop"  # the turn was stopped while the call waited
    CANCEL = "cancel"  # the call was cancelled while it waited


class Approval(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="approvals")
    tool_use_id = models.CharField(max_length=100)
    tool_name = models.CharField(max_length=200)
    input = models.JSONField(default=dict, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    decision = models.CharField(max_length=8, choices=ApprovalDecision.choices, blank=True, default="")
    decided_by = models.CharField(max_length=8, choices=DecidedBy.choices, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    request_seq = models.PositiveBigIntegerField(default=0)  # the seq of its data-approval event
    decision_seq = models.PositiveBigIntegerField(null=True, blank=True)  # …and of its data-approval-decision

    class Meta:
        ordering = ["requested_at"]
        constraints = [models.UniqueConstraint(fields=["turn", "tool_use_id"], name="one_approval_per_call")]
        indexes = [models.Index(fields=["decision", "requested_at"])]

    def __str__(self) -> str:
        return f"approval of {self.tool_name} {self.tool_use_id}: {self.decision or 'waiting'}"

    @property
    def is_pending(self) -> bool:
        return not self.decision

"""What starts runs without a person: schedules (cron) and signed webhooks, each of one agent."""

import uuid

from django.db import models


class Schedule(models.Model):
    """Runs the agent at each time of a cron expression, in a timezone. `next_run_at` is the one time it waits for:
    a scheduler claims a due schedule by moving it on (agents.schedules), so each time runs once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="schedules")
    cron = models.CharField(max_length=100)
    timezone = models.CharField(max_length=64, default="UTC")
    inputs = models.JSONField(default=dict, blank=True)  # {node id: {input: value}}, checked when it runs
    next_run_at = models.DateTimeField()
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run = models.ForeignKey("agents.AgentRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_error = models.TextField(blank=True, default="")  # why the last time did not queue a run
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["next_run_at", "id"]
        indexes = [models.Index(fields=["next_run_at"])]

    def __str__(self) -> str:
        return f"{self.cron} ({self.timezone}) of {self.agent_id}"


class Webhook(models.Model):
    """A URL that runs the agent when POSTed a JSON body signed with the webhook's secret (agents.webhooks)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # the URL's path names it
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="webhooks")
    # The shared secret of the HMAC: it must be kept to check signatures, so it is stored as it is (shown once).
    secret = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"webhook {self.id} of {self.agent_id}"


class WebhookDelivery(models.Model):
    """A signed request a webhook accepted: its signature is kept while its timestamp is fresh, to refuse replays,
    and the deliveries of the last minute are its rate."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    signature = models.CharField(max_length=64)  # hex HMAC-SHA256 of "<timestamp>.<body>"
    received_at = models.DateTimeField(auto_now_add=True)
    run = models.ForeignKey("agents.AgentRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["webhook", "signature"], name="webhook_delivery_once")]
        indexes = [models.Index(fields=["webhook", "received_at"])]

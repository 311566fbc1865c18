"""Agent runs: one execution of an agent version in a background worker, and what each node did."""

import uuid

from django.db import models


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"  # a node failed, or the worker running it stopped
    CANCELLED = "cancelled"


FINAL_RUN_STATUSES = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class RunTrigger(models.TextChoices):
    """What started a run (PROTOCOL §10)."""

    API = "api"
    PAGE = "page"
    COPILOT = "copilot"
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"


class AgentRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey("agents.AgentVersion", on_delete=models.CASCADE, related_name="runs")
    # The chat session that asked for the run: it hears when the run ends. None for runs started over the API.
    session = models.ForeignKey("chat.ChatSession", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    inputs = models.JSONField(default=dict, blank=True)  # {node id: {input: value}}, over the nodes' own inputs
    outputs = models.JSONField(null=True, blank=True)  # {node id: output} of the nodes no link leaves
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices, default=RunTrigger.API)
    error = models.TextField(blank=True, default="")
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    process = models.CharField(max_length=100, blank=True, default="")  # hostname:pid of the worker running it
    task_id = models.CharField(max_length=64, blank=True, default="")  # its django.tasks result id

    class Meta:
        ordering = ["-queued_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"]), models.Index(fields=["agent", "-queued_at"])]

    def __str__(self) -> str:
        return f"run {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINAL_RUN_STATUSES


class NodeStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"  # an upstream node did not complete
    CANCELLED = "cancelled"


class AgentRunNode(models.Model):
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="nodes")
    node_id = models.CharField(max_length=64)
    block = models.CharField(max_length=64)
    position = models.PositiveIntegerField()  # the node's place in dependency order
    status = models.CharField(max_length=16, choices=NodeStatus.choices, default=NodeStatus.PENDING)
    input = models.JSONField(null=True, blank=True)  # as the block received it, links and run inputs applied
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "node_id"], name="run_node_unique")]

    def __str__(self) -> str:
        return f"{self.node_id} ({self.block}) of run {self.run_id}: {self.status}"

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds() * 1000)

"""Agents: a user's named graphs of blocks, each save of the graph a new version."""

import uuid

from django.conf import settings
from django.db import models


class AgentStatus(models.TextChoices):
    BUILDING = "building"  # no graph yet: a worker is making one from the description
    READY = "ready"
    FAILED = "failed"  # the build failed; `build_error` says why


class Agent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=AgentStatus.choices, default=AgentStatus.READY)
    build_error = models.TextField(blank=True, default="")
    # The chat session that asked for the build: it hears when the build ends.
    build_session = models.ForeignKey("chat.ChatSession", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    build_started_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="agent_name_unique_per_owner")]
        indexes = [models.Index(fields=["status", "build_started_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class AgentVersion(models.Model):
    """One saved graph of an agent (PROTOCOL §6 shape), valid when it was saved. Versions count from 1."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    graph = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["agent", "-number"]
        constraints = [models.UniqueConstraint(fields=["agent", "number"], name="agent_version_unique")]

    def __str__(self) -> str:
        return f"{self.agent.name} v{self.number}"

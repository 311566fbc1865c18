"""Agents: a user's named graphs of blocks, each save of the graph a new version."""

import uuid

from django.conf import settings
from django.db import models


class AgentStatus(models.TextChoices):
    """An agent is made with its graph, so it is `ready`. (`failed`: an agent left from the background builds that
    were removed; `build_error` says why it has no graph.)"""

    READY = "ready"
    FAILED = "failed"


class Agent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=AgentStatus.choices, default=AgentStatus.READY)
    build_error = models.TextField(blank=True, default="")
    # The library agent this one was installed from, if any (its slug: library agents are data, and may change).
    installed_from = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="agent_name_unique_per_owner")]

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

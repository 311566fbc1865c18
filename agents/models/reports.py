"""Background reports: what a chat session hears when work it handed to the background ends (PROTOCOL §2, §6)."""

from django.db import models
from django.db.models import Q


class ReportKind(models.TextChoices):
    RUN = "agent-run"  # sent as a `data-agent-run` chunk
    BUILD = "agent-build"  # sent as a `data-agent-build` chunk


class AgentReport(models.Model):
    """One event outside turns, saved when the work ends and given its seq when it is appended to the log.

    Written in the same transaction as the run's (or build's) final status, so each ending is reported once.
    """

    session = models.ForeignKey("chat.ChatSession", on_delete=models.CASCADE, related_name="agent_reports")
    kind = models.CharField(max_length=16, choices=ReportKind.choices)
    # Kept when an agent or run is deleted: the report stays in the session's history.
    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    run = models.ForeignKey("agents.AgentRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    payload = models.JSONField()  # the chunk's `data`
    seq = models.PositiveBigIntegerField(null=True, blank=True)  # None until appended to the session's log
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run"], condition=Q(kind="agent-run", run__isnull=False),
                                    name="one_report_per_run"),
            models.UniqueConstraint(fields=["agent"], condition=Q(kind="agent-build", agent__isnull=False),
                                    name="one_report_per_build"),
        ]
        indexes = [models.Index(fields=["session", "seq"]), models.Index(fields=["seq", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} report for {self.session_id} (seq {self.seq})"

    @property
    def chunk_type(self) -> str:
        return f"data-{self.kind}"

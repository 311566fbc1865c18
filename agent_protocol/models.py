"""What the Agent Protocol keeps beside chat's own rows: which sessions are its tasks, and which files a client put."""

from django.db import models


class ProtocolTask(models.Model):
    """A chat session made through /ap/: its first step runs `input` (PROTOCOL §10)."""

    session = models.OneToOneField("chat.ChatSession", on_delete=models.CASCADE, primary_key=True,
                                   related_name="protocol_task")
    input = models.TextField(null=True, blank=True)
    additional_input = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"task {self.session_id}"


class UploadedArtifact(models.Model):
    """A workspace file a client uploaded (so `agent_created` is false for it)."""

    task = models.ForeignKey(ProtocolTask, on_delete=models.CASCADE, related_name="uploads")
    path = models.CharField(max_length=500)  # relative to the workspace

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "path"], name="uploaded_artifact_once")]

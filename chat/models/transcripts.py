"""The SDK's conversation transcripts, mirrored into the database so any process can resume them."""

from django.db import models
from django.db.models import Q


class TranscriptEntry(models.Model):
    """One JSONL line of a CLI transcript, as the SDK's SessionStore hands it over."""

    # Keeps stores apart that share the table (the SDK's conformance suite makes many).
    namespace = models.CharField(max_length=64, default="copilot")
    project_key = models.CharField(max_length=255)
    session_id = models.CharField(max_length=128)
    subpath = models.CharField(max_length=255, blank=True, default="")  # "": the main transcript
    uuid = models.CharField(max_length=128, null=True, blank=True)
    entry = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["namespace", "project_key", "session_id", "subpath", "id"]),
                   # Whether a conversation is stored, whatever its project (where a turn resumes; the admin).
                   models.Index(fields=["session_id", "subpath"], name="transcript_by_session")]
        constraints = [
            models.UniqueConstraint(fields=["namespace", "project_key", "session_id", "subpath", "uuid"],
                                    condition=Q(uuid__isnull=False), name="transcript_entry_uuid_unique"),
        ]

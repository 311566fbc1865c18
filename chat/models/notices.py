"""Notices: what a session hears outside its turns (PROTOCOL §2 "Events outside turns"), such as the end of an
agent run it asked for. Each is saved before it is appended to the session's event log, and gets its seq then."""

from django.db import models

from chat.models.sessions import ChatSession


class SessionNotice(models.Model):
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="notices")
    kind = models.CharField(max_length=64)  # its chunk is `data-<kind>`, e.g. data-agent-run
    # What it is about ("agent-run:<run id>"): a session hears of each thing once.
    key = models.CharField(max_length=200)
    payload = models.JSONField()  # the chunk's `data`
    seq = models.PositiveBigIntegerField(null=True, blank=True)  # None until appended to the session's log
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["session", "key"], name="one_notice_per_key")]
        indexes = [models.Index(fields=["session", "seq"]), models.Index(fields=["seq", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} notice for {self.session_id} (seq {self.seq})"

    @property
    def chunk_type(self) -> str:
        return f"data-{self.kind}"

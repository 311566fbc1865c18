"""Chat sessions and their messages, which form a tree: each message follows its `parent`, and every version of
an edited message or a regenerated answer is kept as a sibling. The session shows one branch: its `active_leaf`."""

import uuid

from django.conf import settings
from django.db import models


class ChatSession(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    title = models.CharField(max_length=200, default="New chat")
    # A person chose the title (when creating the chat, or by renaming it): no title is written for it then.
    title_set = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The Claude Agent SDK's session id, so the next turn continues the same conversation.
    sdk_session_id = models.CharField(max_length=64, blank=True, default="")
    # "ask": every tool call the policy allows waits for the user's decision (PROTOCOL §7).
    approval_mode = models.CharField(max_length=8, choices=[("auto", "auto"), ("ask", "ask")], default="auto")
    model = models.CharField(max_length=100, blank=True, default="")  # "": the default of the MODELS setting
    # The newest message of the branch shown, which the next turn continues; None before the first turn.
    active_leaf = models.ForeignKey("chat.Message", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self) -> str:
        return f"{self.title} ({self.id})"


class MessageRole(models.TextChoices):
    USER = "user"
    ASSISTANT = "assistant"


class Message(models.Model):
    """One message of a session. `parts` holds its text parts; tool calls are rows of their own. `position`
    orders messages by creation, across branches."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    position = models.PositiveIntegerField()
    # The message this one follows: a user message follows an answer (None: the first of its branch), an answer
    # its user message. Messages with the same parent and role are versions of one another.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    role = models.CharField(max_length=16, choices=MessageRole.choices)
    # [{"type": "text", "index": 0, "text": "…"}]; `index` orders text and tool parts together.
    parts = models.JSONField(default=list, blank=True)
    body = models.TextField(blank=True, default="")  # its text parts as one text, for search; saved with `parts`
    client_message_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The seq of the newest event whose effect on this row is saved.
    seq = models.PositiveBigIntegerField(default=0)
    # An answer's tokens and cost, as the CLI reported them: {input_tokens, output_tokens, cache_read_input_tokens,
    # cache_creation_input_tokens, cost_usd}.
    usage = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["session", "position"]
        constraints = [
            models.UniqueConstraint(fields=["session", "position"], name="message_position_unique"),
            models.UniqueConstraint(fields=["session", "client_message_id"], name="message_client_id_unique"),
        ]
        indexes = [models.Index(fields=["session", "parent"])]

    def __str__(self) -> str:
        return f"{self.role} #{self.position} of {self.session_id}"

    @property
    def text(self) -> str:
        return "".join(part.get("text", "") for part in self.parts if part.get("type") == "text")

"""Conversation models, re-exported so callers import from `chat.models`."""

from chat.models.approvals import Approval, ApprovalDecision, DecidedBy
from chat.models.notices import SessionNotice
from chat.models.sessions import ChatSession, Message, MessageRole
from chat.models.transcripts import TranscriptEntry
from chat.models.turns import ToolCall, ToolCallStatus, Turn, TurnStatus
from chat.models.usage import UsageDay

__all__ = ["Approval", "ApprovalDecision", "ChatSession", "DecidedBy", "Message", "MessageRole", "SessionNotice",
           "ToolCall", "ToolCallStatus", "TranscriptEntry", "Turn", "TurnStatus", "UsageDay"]

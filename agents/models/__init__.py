"""Agent models, re-exported so callers import from `agents.models`."""

from agents.models.agents import Agent, AgentStatus, AgentVersion
from agents.models.library import LibraryAgent
from agents.models.runs import AgentRun, AgentRunNode, NodeStatus, RunStatus, RunTrigger
from agents.models.triggers import Schedule, Webhook, WebhookDelivery

__all__ = ["Agent", "AgentRun", "AgentRunNode", "AgentStatus", "AgentVersion", "LibraryAgent", "NodeStatus", "RunStatus",
           "RunTrigger", "Schedule", "Webhook", "WebhookDelivery"]

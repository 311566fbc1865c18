"""Agent models, re-exported so callers import from `agents.models`."""

from agents.models.agents import Agent, AgentStatus, AgentVersion
from agents.models.runs import AgentRun, AgentRunNode, NodeStatus, RunStatus

__all__ = ["Agent", "AgentRun", "AgentRunNode", "AgentStatus", "AgentVersion", "NodeStatus", "RunStatus"]

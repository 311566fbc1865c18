"""Agent models, re-exported so callers import from `agents.models`."""

from agents.models.agents import Agent, AgentStatus, AgentVersion
from agents.models.reports import AgentReport, ReportKind
from agents.models.runs import AgentRun, AgentRunNode, NodeStatus, RunStatus

__all__ = ["Agent", "AgentReport", "AgentRun", "AgentRunNode", "AgentStatus", "AgentVersion", "NodeStatus",
           "ReportKind", "RunStatus"]

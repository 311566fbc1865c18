"""Application errors of agents; the API and the copilot tools translate them like every ApplicationError."""

from core.errors import ApplicationError


class BadAgent(ApplicationError):
    code = "bad_agent"
    http_status = 400


class AgentExists(ApplicationError):
    code = "agent_exists"
    http_status = 409


class AgentNotReady(ApplicationError):
    code = "agent_not_ready"
    http_status = 409


class RunFinished(ApplicationError):
    code = "run_finished"
    http_status = 409


class TooManyRuns(ApplicationError):
    code = "too_many_runs"
    http_status = 429

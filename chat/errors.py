"""Application errors of conversations; the API and the websocket translate them like every ApplicationError."""

from core.errors import ApplicationError


class BadMessage(ApplicationError):
    code = "bad_message"
    http_status = 400


class TurnRunning(ApplicationError):
    code = "turn_running"
    http_status = 409


class NothingRunning(ApplicationError):
    code = "nothing_running"
    http_status = 409


class QueueFull(ApplicationError):
    code = "queue_full"
    http_status = 409


class TurnStarted(ApplicationError):
    code = "turn_started"
    http_status = 409


class UnknownApproval(ApplicationError):
    code = "unknown_approval"
    http_status = 404


class AlreadyDecided(ApplicationError):
    code = "already_decided"
    http_status = 409


class NotRunning(ApplicationError):
    """A tool call that has ended (409), or that the session never had (404)."""

    code = "not_running"
    http_status = 409


class NotCancellable(ApplicationError):
    code = "not_cancellable"
    http_status = 409


class OverBudget(ApplicationError):
    """The user spent USER_DAILY_BUDGET_USD today."""

    code = "over_budget"
    http_status = 429


class UnknownMessage(ApplicationError):
    """A message id (to edit, regenerate or show) that is not one of the session's."""

    code = "unknown_message"
    http_status = 404


class BadModel(ApplicationError):
    code = "bad_model"
    http_status = 400


class BadQuery(ApplicationError):
    code = "bad_query"
    http_status = 400


class BadFormat(ApplicationError):
    code = "bad_format"
    http_status = 400

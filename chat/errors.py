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


class TooManyTurns(ApplicationError):
    code = "rate_limited"
    http_status = 429

"""The one application error type; the API and the websocket translate it in one place each."""


class ApplicationError(Exception):
    code = "error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(ApplicationError):
    code = "not_found"
    http_status = 404


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

"""The one application error type. The API translates it in `core.api.errors`, the websocket in its consumer."""


class ApplicationError(Exception):
    code = "error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def as_json(self) -> dict:
        """The error as the API and the tools show it: `{code, message}`, and whatever a subclass adds."""
        return {"code": self.code, "message": self.message}


class NotAuthenticated(ApplicationError):
    code = "not_authenticated"
    http_status = 401


class NotFound(ApplicationError):
    code = "not_found"
    http_status = 404


class BadInput(ApplicationError):
    """Input that is not what the contract says: malformed, mistyped, nested too deep."""

    code = "bad_input"
    http_status = 400


class QuotaExceeded(ApplicationError):
    """A user reached one of their quotas (MAX_*_PER_USER); the message names it."""

    code = "quota_exceeded"
    http_status = 429

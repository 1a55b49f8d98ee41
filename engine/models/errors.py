"""The small typed set every provider error is mapped to."""

from __future__ import annotations


class ModelError(Exception):
    """A model call failed; `code` is stable, `message` is for people and never holds a secret."""

    code = "model-error"
    retryable = False

    def __init__(self, message: str, *, hint: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.retry_after = retry_after


class RateLimited(ModelError):
    """The provider asked us to slow down; `retry_after` seconds when it said."""

    code = "rate-limited"
    retryable = True


class AuthError(ModelError):
    """The key is missing or refused; `hint` names the environment variable to set."""

    code = "auth"


class ContextOverflow(ModelError):
    """The request did not fit the model's window."""

    code = "context-overflow"


class Unavailable(ModelError):
    """The provider (or the local runtime) is down, timed out or not installed."""

    code = "unavailable"
    retryable = True


class BadRequest(ModelError):
    """The provider refused the request as malformed."""

    code = "bad-request"

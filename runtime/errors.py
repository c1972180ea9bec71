"""The service's error hierarchy. Raised anywhere; each API dialect renders it in its own shape."""

from __future__ import annotations


class ServiceError(Exception):
    status: int = 500
    retry_after: float | None = None  # seconds; sent as a Retry-After header where set

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(ServiceError):
    status = 400


class ContextLengthExceeded(InvalidRequest):
    """The prompt (plus the requested output) does not fit the model's context window."""

    def __init__(self, message: str, *, prompt_tokens: int, max_context: int, param: str | None = None):
        super().__init__(message, param=param)
        self.prompt_tokens = prompt_tokens
        self.max_context = max_context


class Unauthorized(ServiceError):
    status = 401


class NotFound(ServiceError):
    status = 404


class RequestTooLarge(ServiceError):
    status = 413


class UnsupportedMediaType(InvalidRequest):
    """A body that is not declared JSON (a form, say)."""

    status = 415


class Overloaded(ServiceError):
    """Too many requests queued; the client should retry later (after `retry_after` seconds)."""

    status = 429

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineUnavailable(ServiceError):
    """The engine is not (yet, or any longer) able to serve."""

    status = 503


class EngineFailure(ServiceError):
    """The engine failed while running a request. The message is safe to show; details go to the log."""

    status = 500

"""Whatever was raised, as one of the service's errors: Litestar's HTTP exceptions and unexpected failures
become ServiceErrors that each dialect renders in its own shape. Unexpected failures are logged here, one
line each (a RecursionError's traceback alone is 2,000 lines), and never shown to clients beyond a generic
message."""

from __future__ import annotations

import logging
import math
import traceback

from litestar.exceptions import HTTPException, InternalServerException

from runtime.errors import (
    EngineFailure,
    EngineUnavailable,
    InvalidRequest,
    NotFound,
    Overloaded,
    RequestTooLarge,
    ServiceError,
    Unauthorized,
)

log = logging.getLogger(__name__)

# What litestar/connection/request.py raises when the client goes away while its body is being read.
_BODY_DISCONNECT = "client disconnected prematurely"


class ClientClosedRequest(ServiceError):
    """The client went away before its request was read: nginx's 499, logged and counted as such."""

    status = 499

_BY_STATUS: dict[int, type[ServiceError]] = {
    400: InvalidRequest, 401: Unauthorized, 404: NotFound, 413: RequestTooLarge, 429: Overloaded,
    503: EngineUnavailable,
}


def as_service_error(exc: Exception) -> ServiceError:
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, InternalServerException) and exc.detail == _BODY_DISCONNECT:
        return ClientClosedRequest("The client closed the connection while sending its request.")
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status == 413:
            return RequestTooLarge("The request body is too large.")
        if status == 404:
            return NotFound("Not found.")
        if status == 405:
            err = InvalidRequest("Method not allowed for this route.")
            err.status = 405
            return err
        cls = _BY_STATUS.get(status)
        if cls is not None:
            return cls(str(exc.detail))
        if 400 <= status < 500:
            err = InvalidRequest(str(exc.detail))
            err.status = status
            return err
    log.error("unhandled error: %s", one_line(exc))
    log.debug("unhandled error", exc_info=exc)
    return EngineFailure("The server had an error while processing your request.")


def one_line(exc: BaseException) -> str:
    """The exception's type, message (cut to 300 characters) and the frame that raised it."""
    message = " ".join(str(exc).split())
    if len(message) > 300:
        message = message[:300] + "..."
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return f"{type(exc).__name__}: {message}{where}"


def error_headers(err: ServiceError) -> dict[str, str]:
    """Retry-After (whole seconds) where the error says when to retry."""
    if err.retry_after is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil(err.retry_after)))}

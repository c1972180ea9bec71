"""Whatever was raised, as one of the service's errors: Litestar's HTTP exceptions and unexpected failures
become ServiceErrors that each dialect renders in its own shape. Unexpected failures are logged here and
never shown to clients beyond a generic message."""

from __future__ import annotations

import logging

from litestar.exceptions import HTTPException

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

_BY_STATUS: dict[int, type[ServiceError]] = {
    400: InvalidRequest, 401: Unauthorized, 404: NotFound, 413: RequestTooLarge, 429: Overloaded,
    503: EngineUnavailable,
}


def as_service_error(exc: Exception) -> ServiceError:
    if isinstance(exc, ServiceError):
        return exc
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
    log.error("unhandled error", exc_info=exc)
    return EngineFailure("The server had an error while processing your request.")

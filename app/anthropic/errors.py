"""Service errors in Anthropic's shape: {"type": "error", "error": {"type", "message"}, "request_id"}, with the
same id in the `request-id` header (app/request_id.py).

Statuses keep their meaning, with one exception: EngineUnavailable (our 503: the model is loading, failed to
load, or the server is shutting down) is answered as 529 overloaded_error, the status Anthropic's clients know
as "temporarily unable to serve, retry" (the SDK retries it; Claude Code reports it as overloaded).
"""

from __future__ import annotations

from litestar import Request, Response

from app.anthropic import schemas as s
from app.decoding import json_dumps
from app.errors import as_service_error, error_headers
from app.request_id import request_id
from runtime.errors import ContextLengthExceeded, EngineUnavailable, InvalidRequest, NotFound, ServiceError
from runtime.service import WINDOW_HINT

_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    405: "invalid_request_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
    529: "overloaded_error",
}
OVERLOADED = 529
class ThreadNotFound(NotFound):
    """A `thread: {"type": "continue"}` whose conversation this server does not hold. The SDK's thread state
    recognises `details.error_code` and replays the whole history under a new thread."""

    error_code = "thread_not_found"


class ThreadAlreadyContinued(InvalidRequest):
    """A `continue` from a reply that another turn has already continued: a thread is linear (the SDK's
    ThreadAlreadyContinuedError, a 400; it replays the history under a new thread, as its `fork()` does)."""

    error_code = "thread_already_continued"


class ThreadContinueInFlight(InvalidRequest):
    """A `continue` from a reply that another request, still running, is continuing (the SDK's
    ThreadContinueInFlightError, a 400, on which it replays as well)."""

    error_code = "thread_continue_in_flight"


THREAD_ERRORS = (ThreadNotFound, ThreadAlreadyContinued, ThreadContinueInFlight)


def error_status(err: ServiceError) -> int:
    return OVERLOADED if isinstance(err, EngineUnavailable) or err.status == 503 else err.status


def error_type(status: int) -> str:
    if status in _TYPES:
        return _TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_message(err: ServiceError) -> str:
    if isinstance(err, ContextLengthExceeded):
        # The wording Claude Code recognises: it compacts the conversation and retries.
        return (f"prompt is too long: {err.prompt_tokens} tokens > {err.max_context} maximum "
                f"{WINDOW_HINT}")
    if err.param and err.param not in err.message:
        return f"{err.param}: {err.message}"
    return err.message


def error_body(err: ServiceError, rid: str | None = None) -> s.ErrorOut:
    detail = s.ErrorDetail(error_type(error_status(err)), error_message(err))
    if isinstance(err, THREAD_ERRORS):
        detail.details = {"error_code": err.error_code}
    return s.ErrorOut(detail) if rid is None else s.ErrorOut(detail, request_id=rid)


def error_response(request: Request, err: ServiceError) -> Response:
    return Response(json_dumps(error_body(err, request_id(request))), status_code=error_status(err),
                    media_type="application/json", headers=error_headers(err))


def anthropic_error_handler(request: Request, exc: Exception) -> Response:
    return error_response(request, as_service_error(exc))

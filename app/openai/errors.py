"""Service errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from litestar import Request, Response

from app.decoding import json_dumps
from app.errors import as_service_error, error_headers
from app.openai.schemas import ErrorDetail, ErrorResponse
from runtime.errors import ContextLengthExceeded, NotFound, ServiceError

_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error",
    413: "invalid_request_error", 415: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "service_unavailable_error",
}


def error_body(err: ServiceError) -> ErrorResponse:
    code: str | None = getattr(err, "error_code", None)  # an error that names its own code
    if code is not None:
        pass
    elif isinstance(err, ContextLengthExceeded):
        code = "context_length_exceeded"
    elif isinstance(err, NotFound) and err.param == "model":
        code = "model_not_found"
    elif err.status == 401:
        code = "invalid_api_key"
    elif err.status == 413:
        code = "request_too_large"
    return ErrorResponse(ErrorDetail(err.message, _TYPES.get(err.status, "server_error"), err.param, code))


def openai_error_handler(_: Request, exc: Exception) -> Response:
    err = as_service_error(exc)
    return Response(json_dumps(error_body(err)), status_code=err.status, media_type="application/json",
                    headers=error_headers(err))

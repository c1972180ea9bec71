"""Which API dialect a connection speaks, decided here only: for the answers given outside a dialect's own
router (auth, unknown routes, the shared /v1/models). Anthropic's clients send `anthropic-version` on every
request; everything else is answered as OpenAI."""

from __future__ import annotations

import enum
from typing import Any

from litestar import Request, Response
from litestar.connection import ASGIConnection

from app.anthropic.errors import anthropic_error_handler
from app.openai.errors import openai_error_handler


class Dialect(enum.Enum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


def dialect_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Dialect:
    if "anthropic-version" in connection.headers or connection.url.path.startswith("/v1/messages"):
        return Dialect.ANTHROPIC
    return Dialect.OPENAI


def speaks_anthropic(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return dialect_of(connection) is Dialect.ANTHROPIC


def error_in_callers_dialect(request: Request, exc: Exception) -> Response:
    if speaks_anthropic(request):
        return anthropic_error_handler(request, exc)
    return openai_error_handler(request, exc)

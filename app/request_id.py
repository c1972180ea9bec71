"""One id per request, from the edge to the engine: minted (or taken from the client) before routing, put on
every log line of the request, used as the engine's request id, and returned in the response headers.

- An incoming `x-request-id` (or `request-id`) is honoured when it is sane (1-128 characters of
  `[A-Za-z0-9._:-]`), so a proxy's id follows the request through our logs; otherwise `req_<24 hex>`.
- The response carries it as `x-request-id` (OpenAI's header) and `request-id` (Anthropic's), on every
  answer, errors and streams included; Anthropic's error bodies carry it as `request_id`.
- Log records get it as `request_id` (LOG_FORMAT shows it) through a contextvar: worker threads
  (asyncio.to_thread) and tasks started from the request (the run owner's) copy the context, so they log it
  too.
- The engine's id for choice i is `<id>-<i>`, plus a random part when the id came from the client (two
  requests could carry the same one, and engine ids must be unique while they run).
"""

from __future__ import annotations

import logging
import re
import secrets
from contextvars import ContextVar
from typing import Any

from litestar.connection import ASGIConnection
from litestar.types import ASGIApp, Message, Receive, Scope, Send

_SANE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_INCOMING = (b"x-request-id", b"request-id")
_SCOPE_KEY = "request_id"
NO_REQUEST = "-"  # what log lines outside any request show

current_request_id: ContextVar[str] = ContextVar("request_id", default=NO_REQUEST)


def mint() -> str:
    return "req_" + secrets.token_hex(12)


def _incoming(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name in _INCOMING:
            text = value.decode("latin-1")
            if _SANE.fullmatch(text):
                return text
    return None


def _state(scope: Scope) -> tuple[str, bool]:
    """(id, whether the client sent it), made on first use."""
    state = scope.setdefault("state", {})  # type: ignore[typeddict-item]
    if _SCOPE_KEY not in state:
        incoming = _incoming(scope)
        state[_SCOPE_KEY] = (incoming or mint(), incoming is not None)
    return state[_SCOPE_KEY]


class RequestIdMiddleware:
    """Sets the id for the request's log lines before its handler runs (Litestar runs app middleware for
    routed requests; the headers, for every response, are `add_headers`'s)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = current_request_id.set(_state(scope)[0])
        try:
            await self.app(scope, receive, send)
        finally:
            current_request_id.reset(token)


def add_headers(message: Message, scope: Scope) -> None:
    """At every response's start (404s and auth failures included; app/server.py's before-send hook): the id."""
    header = _state(scope)[0].encode()
    headers = [h for h in message.get("headers", ()) if h[0].lower() not in _INCOMING]
    message["headers"] = [*headers, (b"x-request-id", header), (b"request-id", header)]


def request_id(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return _state(connection.scope)[0]


def engine_rids(connection: ASGIConnection[Any, Any, Any, Any], count: int) -> list[str]:
    """The engine's ids for this request's `count` runs."""
    rid, incoming = _state(connection.scope)
    if incoming:  # the client's id: not necessarily unique
        rid = f"{rid}-{secrets.token_hex(4)}"
    return [f"{rid}-{i}" for i in range(count)]


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def install_log_ids() -> None:
    """Every log record, from any logger, gets `request_id` when it is made (in the request's context, so
    also when a queue handler formats it on another thread). Idempotent."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "adds_request_id", False):
        return

    def record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made = factory(*args, **kwargs)
        made.request_id = current_request_id.get()
        return made

    record.adds_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(record)

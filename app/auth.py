"""API keys: when configured, every /v1 route requires one (Bearer or x-api-key); /health and /metrics stay
open. Unknown paths and wrong methods are checked too (app/server.py), so without a key a scanner learns
nothing about which routes exist: 401, never 404 or 405."""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from app.dialect import speaks_anthropic
from runtime.errors import Unauthorized


def presented_keys(connection: ASGIConnection) -> list[str]:
    """The keys a request presents: a Bearer token (OpenAI's clients) and an x-api-key (Anthropic's). Clients
    and gateways may send both, one of them stale: either matching is enough."""
    keys = []
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        keys.append(token.strip())
    if connection.headers.get("x-api-key"):
        keys.append(connection.headers["x-api-key"])
    return keys


def key_matches(presented: str, keys: tuple[str, ...]) -> bool:
    # Compare against every key, always, so timing says nothing about which (or whether one) matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    return matched


def require_key(connection: ASGIConnection, keys: tuple[str, ...]) -> None:
    """Unauthorized unless `keys` is empty (no auth) or the connection presents one of them."""
    if not keys:
        return
    presented = presented_keys(connection)
    if not presented:
        # Name the header this client's SDK sends (Anthropic's: x-api-key; OpenAI's: Authorization).
        header = "'x-api-key: <key>'" if speaks_anthropic(connection) else "'Authorization: Bearer <key>'"
        raise Unauthorized(f"Missing API key: send {header}.")
    if not any([key_matches(key, keys) for key in presented]):  # a list: check every key, timing alike
        raise Unauthorized("Incorrect API key provided.")


def api_key_guard(keys: tuple[str, ...]):
    # async, though it never awaits: Litestar runs a sync guard in a worker thread, a thread hand-off per request
    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        require_key(connection, keys)

    return guard

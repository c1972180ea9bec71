"""API keys: when configured, every /v1 route requires one (Bearer or x-api-key); /health and /metrics stay
open. Unknown paths and wrong methods are checked too (app/server.py), so without a key a scanner learns
nothing about which routes exist: 401, never 404 or 405."""

from __future__ import annotations

import hmac

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from runtime.errors import Unauthorized


def presented_key(connection: ASGIConnection) -> str | None:
    auth = connection.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return connection.headers.get("x-api-key")


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
    presented = presented_key(connection)
    if presented is None:
        raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>'.")
    if not key_matches(presented, keys):
        raise Unauthorized("Incorrect API key provided.")


def api_key_guard(keys: tuple[str, ...]):
    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        require_key(connection, keys)

    return guard

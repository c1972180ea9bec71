"""Which API dialect a connection speaks, for the answers given outside a dialect's own router (auth,
unknown routes, the shared /v1/models): Anthropic's clients send `anthropic-version` on every request."""

from __future__ import annotations

from litestar.connection import ASGIConnection


def speaks_anthropic(connection: ASGIConnection) -> bool:
    return "anthropic-version" in connection.headers or connection.url.path.startswith("/v1/messages")

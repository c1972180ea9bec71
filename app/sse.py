"""Server-sent events framing, for every dialect: a `data:` record (with an `event:` line where the dialect
names its events) and a comment line, which clients ignore and proxies count as traffic (a keep-alive)."""

from __future__ import annotations

from app.decoding import json_dumps

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering: each record now
MEDIA_TYPE = "text/event-stream"
COMMENT = b": keep-alive\n\n"


def data(payload: object) -> bytes:
    return b"data: " + json_dumps(payload) + b"\n\n"


def named(event: str, payload: object) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + json_dumps(payload) + b"\n\n"

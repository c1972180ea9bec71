"""Request bodies must be declared JSON: `Content-Type: application/json` (any parameters, such as a charset).

A body sent as a form (`curl -d` and Python's urllib send `application/x-www-form-urlencoded` unless told
otherwise), as multipart or as text is refused with 415, in the caller's dialect, rather than read as JSON
anyway: vLLM refuses these too (400 there), and a client that sends a form meant something else. A request
without a Content-Type is read as JSON, as SGLang and FastAPI servers read it: the client declared nothing.
"""

from __future__ import annotations

from litestar import Request

from runtime.errors import UnsupportedMediaType

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


async def require_json_body(request: Request) -> None:
    """A before_request hook for every route (it runs after the API-key guard, so a 401 comes first)."""
    if request.method not in _BODY_METHODS:
        return
    content_type = request.headers.get("content-type")
    if content_type is not None and not is_json(content_type):
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {content_type.split(';', 1)[0][:100]!r}: send the body as JSON, with "
            "`Content-Type: application/json`.")

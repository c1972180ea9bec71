"""The request-preparation phase of every route: decode -> convert -> plan -> render/tokenize, before the engine
runs. Bad input lives here, so an exception of the kinds bad values cause is the client's error: a 400
`invalid_request_error` in the caller's dialect, with a plain message (never the exception's text or a
trace) and one log line. That covers the next unforeseen bad value too. Failures once the engine runs stay
500s: they are not wrapped. The phase's CPU work, proportional to the body, runs in worker threads
(asyncio.to_thread), never on the event loop, so a costly body cannot stall other requests or /health."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Request

from runtime.errors import InvalidRequest, ServiceError

log = logging.getLogger(__name__)

# What bad values make library code raise (UnicodeError and JSONDecodeError are ValueErrors, KeyError and
# IndexError LookupErrors). A chat template's own refusals (jinja's TemplateError) are InvalidRequests already,
# with the template's message (runtime/templating.py).
BAD_INPUT: tuple[type[Exception], ...] = (ValueError, TypeError, LookupError, OverflowError, RecursionError)


@asynccontextmanager
async def preparing(request: Request) -> AsyncIterator[None]:
    """Wrap a route's preparation phase: its bad-input exceptions become InvalidRequest."""
    try:
        yield
    except ServiceError:
        raise
    except BAD_INPUT as exc:
        log.warning("%s %s: request refused while preparing it: %s", request.method, request.url.path,
                    type(exc).__name__)
        raise InvalidRequest(_message(exc)) from None


def _message(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "The request is nested too deeply to process."
    if isinstance(exc, UnicodeError):
        return "The request holds text that is not valid Unicode (such as a lone surrogate escape, \\ud800)."
    return f"The request holds a value this server cannot process ({type(exc).__name__})."

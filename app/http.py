"""uvicorn's h11 protocol with a header-read timeout, against slow header senders (slowloris).

uvicorn 0.54 has no such timeout: `--timeout-keep-alive` runs only between requests and is cancelled by the
first byte of the next one (h11_impl.py `data_received`), so a client that trickles a header line every few
seconds holds its connection, and a task, forever. Here each request's headers must be complete within
`timeout` seconds of the connection opening, or of the first byte after the previous response; otherwise the
connection is closed. The body is not covered (uploads may be slow; --max-request-bytes bounds their size).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


class HeaderTimeoutH11Protocol(H11Protocol):
    timeout: float = 30.0  # set per server by with_header_timeout()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._headers_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._headers_timer is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first bytes of a request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # its headers are complete

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request already buffered was parsed just now; an idle connection is the keep-alive timer's.
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self._headers_timer = self.loop.call_later(self.timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None

    def _headers_too_slow(self) -> None:
        self._headers_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            client = "%s:%d" % self.client if self.client else "a client"
            log.info("%s sent no complete request headers within %g s; closing the connection", client, self.timeout)
            self.transport.close()


def with_header_timeout(timeout: float) -> type[HeaderTimeoutH11Protocol]:
    """The protocol class for uvicorn's `http=` setting, with this timeout."""
    return type("HeaderTimeoutH11Protocol", (HeaderTimeoutH11Protocol,), {"timeout": timeout})

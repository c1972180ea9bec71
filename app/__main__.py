"""`python -m app [flags]`: serve on uvicorn (one worker: the engine lives in this process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn

from app.http import with_header_timeout
from app.request_id import LOG_FORMAT, install_log_ids
from app.server import create_app, service_state
from app.settings import load_settings

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DrainingServer(uvicorn.Server):
    """uvicorn's server with two changes to its shutdown (uvicorn/server.py, 0.54):

    - The app hears of the signal at once. uvicorn itself stops accepting, waits for every connection to
      close (up to timeout_graceful_shutdown), cancels what is left, and only then runs the lifespan's
      shutdown: too late for the app to end its streams properly. `on_signal` lets it drain first
      (app/state.py ServiceState.begin_shutdown).
    - A graceful shutdown exits 0. uvicorn re-raises the signal after shutting down, with the default
      handler back in place, so a SIGTERM'd server would exit 143 however cleanly it stopped.
    """

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_signal = on_signal
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit and self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_signal)  # in a signal handler: only schedule
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in SHUTDOWN_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def main() -> None:
    settings = load_settings()
    install_log_ids()
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    logging.getLogger(__name__).info("starting with %r", settings)
    app = create_app(settings)
    # uvicorn's own deadline comes after the app's drain and cut-off, as a last resort for a stuck engine.
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level, workers=1,
                            http=with_header_timeout(settings.header_read_timeout),
                            timeout_graceful_shutdown=int(settings.shutdown_timeout) + 15)
    server = DrainingServer(config, service_state(app).begin_shutdown)
    server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE, as uvicorn.run exits


if __name__ == "__main__":
    main()

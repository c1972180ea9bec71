"""`python -m app [flags]`: serve on uvicorn (one worker: the engine lives in this process)."""

from __future__ import annotations

import logging

import uvicorn

from app.server import create_app
from app.settings import load_settings


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger(__name__).info("starting with %r", settings)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                workers=1, timeout_graceful_shutdown=int(settings.shutdown_timeout) + 5)


if __name__ == "__main__":
    main()

"""The app on uvicorn in a thread of the test process, so a test can script the engine it runs (the fake
`sglang`, tests/scripted_engine.py) and read the app's state."""

from __future__ import annotations

import threading
import time

import httpx
import uvicorn

from app.server import create_app, service_state
from app.settings import Settings
from app.state import ServiceState


class ThreadServer:
    def __init__(self, settings: Settings) -> None:
        self.port = 0  # the OS picks a free one; read back once started
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def state(self) -> ServiceState:
        return service_state(self.app)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def wait_health(self, status: str, timeout: float = 60) -> dict:
        """/health once its status leaves "loading" (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        while True:
            r = httpx.get(self.base_url + "/health")
            body = {"status_code": r.status_code, **r.json()}
            if body["status"] == status or time.monotonic() > deadline:
                return body
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)

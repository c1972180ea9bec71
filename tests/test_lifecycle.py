"""The server's edges on real processes: SIGTERM with streams in flight, a client leaving mid-upload, slow
header senders, an empty key list, and auth ahead of 404/405."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.conftest import API_KEY, MODEL_NAME
from tests.live_server import ROOT, LiveServer, start_server

LONG = {"max_tokens": 3000}


def _records(lines: list[str]) -> list[tuple[str | None, str]]:
    """SSE records as (event name, data)."""
    out, event = [], None
    for line in lines:
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            out.append((event, line[len("data: "):]))
            event = None
    return out


class _OpenStream:
    """A stream read in a thread until it ends; `started` once its first content arrived."""

    def __init__(self, url: str, body: dict, headers: dict | None = None) -> None:
        self.lines: list[str] = []
        self.started = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, args=(url, body, headers or {}))
        self._thread.start()

    def _read(self, url: str, body: dict, headers: dict) -> None:
        try:
            with httpx.stream("POST", url, json=body, headers=headers, timeout=120) as response:
                assert response.status_code == 200, response.read()
                for line in response.iter_lines():
                    self.lines.append(line)
                    if '"delta"' in line or '"text"' in line:
                        self.started.set()
        except BaseException as exc:  # noqa: BLE001
            self.error = exc
        finally:
            self.started.set()

    def join(self) -> list[tuple[str | None, str]]:
        self._thread.join(60)
        assert not self._thread.is_alive(), "the stream never ended"
        assert self.error is None, self.error
        return _records(self.lines)


def test_sigterm_ends_every_open_stream_in_its_dialect_and_exits_0(served_model_args, server_logs):
    server = start_server(*served_model_args, "--served-model-name", MODEL_NAME, "--shutdown-timeout", "1",
                          "--max-running-requests", "8", log_dir=server_logs)
    try:
        base = server.base_url
        chat = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "stream": True,
                "ignore_eos": True, **LONG}
        streams = {
            "chat": _OpenStream(base + "/v1/chat/completions", chat),
            "chat n=2": _OpenStream(base + "/v1/chat/completions", {**chat, "n": 2}),
            "completion": _OpenStream(base + "/v1/completions", {"model": MODEL_NAME, "prompt": "def",
                                                                 "stream": True, "ignore_eos": True, **LONG}),
            "messages": _OpenStream(base + "/v1/messages",
                                    {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}],
                                     "stream": True, **LONG}, {"anthropic-version": "2023-06-01"}),
        }
        for stream in streams.values():
            assert stream.started.wait(60)
        server.process.send_signal(signal.SIGTERM)
        for name, stream in streams.items():
            records = stream.join()
            if name == "messages":
                event, data = records[-1]
                assert event == "error", records[-3:]
                assert json.loads(data)["error"]["type"] == "overloaded_error"
                assert not any(e == "message_stop" for e, _ in records)
            else:
                assert records[-1][1] == "[DONE]", (name, records[-3:])
                error = json.loads(records[-2][1])["error"]
                assert error["type"] == "service_unavailable_error", (name, error)
                assert "shutting down" in error["message"]
        assert server.process.wait(30) == 0
        assert "Traceback" not in server.log()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def keyed_server(served_model_args, server_logs):
    s = start_server(*served_model_args, "--served-model-name", MODEL_NAME, "--header-read-timeout", "1",
                     log_dir=server_logs, env={"INFER_API_KEYS": API_KEY})
    yield s
    s.stop()


def test_client_gone_mid_upload_is_499_without_traceback(keyed_server: LiveServer):
    with socket.create_connection(("127.0.0.1", keyed_server.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + API_KEY.encode() + b"\r\nContent-Length: 1000\r\n\r\n{\"model\":")
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    pattern = re.compile(r'^inference_http_responses_total\{route="/v1/chat/completions",status="(\d+)"\} (\S+)$',
                         re.M)
    while True:
        statuses = dict(pattern.findall(httpx.get(keyed_server.base_url + "/metrics").text))
        if "499" in statuses or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert statuses.get("499") == "1.0", statuses
    assert "500" not in statuses
    assert "Traceback" not in keyed_server.log()


def test_slow_header_sender_is_cut_off(keyed_server: LiveServer):
    with socket.create_connection(("127.0.0.1", keyed_server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 8:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed = True
                break
            sock.settimeout(0.3)
            try:
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        assert closed, "a connection trickling headers stayed open"
        assert time.monotonic() - started < 4
    # A normal client on a kept-alive connection is unaffected by the header timeout between its requests.
    with httpx.Client(base_url=keyed_server.base_url) as client:
        assert client.get("/health").status_code == 200
        time.sleep(1.5)
        assert client.get("/health").status_code == 200


def test_unknown_paths_and_methods_need_the_key_first(keyed_server: LiveServer):
    base = keyed_server.base_url
    assert httpx.get(base + "/v1/no-such-route").status_code == 401
    assert httpx.put(base + "/v1/chat/completions").status_code == 401
    anthropic_style = httpx.get(base + "/v1/no-such-route", headers={"anthropic-version": "2023-06-01"})
    assert anthropic_style.status_code == 401
    assert anthropic_style.json()["error"]["type"] == "authentication_error"
    key = {"Authorization": f"Bearer {API_KEY}"}
    assert httpx.get(base + "/v1/no-such-route", headers=key).status_code == 404
    assert httpx.put(base + "/v1/chat/completions", headers=key).status_code == 405
    assert httpx.get(base + "/health").status_code == 200


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_empty_key_list_refuses_to_start(how: str):
    args, env = [], {}
    if how == "flag":
        args = ["--api-keys", " , "]
    else:
        env = {"INFER_API_KEYS": ""}
    done = subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", **env})
    assert done.returncode != 0
    assert "holds no key" in done.stderr

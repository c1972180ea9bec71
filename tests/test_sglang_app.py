"""The whole service on the SGLang adapter, with the fake `sglang` at the boundary: a real uvicorn server
(in a thread of this process, so the tests can script the fake) and the official OpenAI SDK."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from app.server import create_app
from app.settings import Settings


class ThreadServer:
    def __init__(self, settings: Settings) -> None:
        self.port = 0  # the OS picks a free one; read back once started
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

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


def settings(model_dir: Path) -> Settings:
    return Settings(model=str(model_dir), served_model_name="m", engine="sglang", shutdown_timeout=5)


def test_startup_failure_gives_health_503_and_clear_errors(fake_sglang, tiny_model_dir):
    fake_sglang.control.constructor_error = RuntimeError("CUDA out of memory while loading weights")
    with ThreadServer(settings(tiny_model_dir)) as server:
        health = server.wait_health("failed")
        assert health["status_code"] == 503 and health["error"] == "EngineUnavailable"
        assert "CUDA" not in str(health)  # details (paths, devices) stay in the server log
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError) as err:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert err.value.status_code == 503
        assert "failed to start" in err.value.body["message"]


def test_generation_through_the_adapter(fake_sglang, tiny_model_dir):
    with ThreadServer(settings(tiny_model_dir)) as server:
        assert server.wait_health("ok")["status_code"] == 200
        engine = fake_sglang.control.engines[-1]
        assert engine.kwargs["model_path"] == str(tiny_model_dir)
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
        texts = ["你", "你好", "你好，世", "你好，世界"]
        fake_sglang.control.scripts.append(fake_sglang.Script(texts=texts, finish=fake_sglang.stop_str("!"),
                                                              cached_tokens=3))
        r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], seed=7,
                                           temperature=0.5, max_tokens=9, stop=["!"])
        assert r.choices[0].message.content == "你好，世界" and r.choices[0].finish_reason == "stop"
        assert r.usage.prompt_tokens_details.cached_tokens == 3 and r.usage.completion_tokens == 4
        sent = engine.calls[-1]
        assert sent["sampling_params"]["temperature"] == 0.5 and sent["sampling_params"]["max_new_tokens"] == 9
        assert sent["sampling_params"]["stop"] == ["!"] and len(sent["rid"]) == 32

        fake_sglang.control.scripts.append(fake_sglang.Script(texts=texts, finish=fake_sglang.length(4)))
        stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "你好，世界"

        fake_sglang.control.scripts.append(fake_sglang.Script(
            texts=[], finish=fake_sglang.abort("Failed to compile json_schema grammar: bad", 400, "BadRequestError")))
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                           response_format={"type": "json_object"}, stream=True)
        assert "Failed to compile" in err.value.body["message"]


def test_client_disconnect_aborts_the_request_by_rid(fake_sglang, tiny_model_dir):
    with ThreadServer(settings(tiny_model_dir)) as server:
        assert server.wait_health("ok")["status_code"] == 200
        engine = fake_sglang.control.engines[-1]
        fake_sglang.control.scripts.append(fake_sglang.Script(texts=["a", "ab"], hold=True))
        with httpx.stream("POST", server.base_url + "/v1/chat/completions", timeout=30,
                          json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}) as r:
            for line in r.iter_lines():
                if '"content":"a' in line:
                    break  # and close the connection mid-stream
        rid = engine.calls[-1]["rid"]
        deadline = time.monotonic() + 10
        while rid not in [c["rid"] for c in engine.tokenizer_manager.abort_calls] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rid in [c["rid"] for c in engine.tokenizer_manager.abort_calls]


def test_non_streaming_client_disconnect_aborts_too(fake_sglang, tiny_model_dir):
    with ThreadServer(settings(tiny_model_dir)) as server:
        assert server.wait_health("ok")["status_code"] == 200
        engine = fake_sglang.control.engines[-1]
        fake_sglang.control.scripts.append(fake_sglang.Script(texts=["a"], hold=True))
        with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
            httpx.post(server.base_url + "/v1/chat/completions", timeout=1.0,
                       json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        rid = engine.calls[-1]["rid"]
        deadline = time.monotonic() + 10
        while rid not in [c["rid"] for c in engine.tokenizer_manager.abort_calls] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rid in [c["rid"] for c in engine.tokenizer_manager.abort_calls]

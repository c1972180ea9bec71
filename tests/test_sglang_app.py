"""The whole service on the SGLang adapter, with the fake `sglang` at the boundary: a real uvicorn server
(in a thread of this process, so the tests can script the fake) and the official OpenAI SDK."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
import pytest

from app.settings import Settings
from tests.thread_server import ThreadServer


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
        # SGLang is not sent the stop string: the pipeline matches it in the 4th token's text and aborts, while
        # SGLang runs on a token; the usage counts the tokens up to the stop.
        stopping = [*texts[:3], "你好，世界!", "你好，世界!还"]
        fake_sglang.control.scripts.append(fake_sglang.Script(texts=stopping, hold=True, cached_tokens=3))
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}], seed=7, temperature=0.5, max_tokens=9,
            stop=["!"])
        r = raw.parse()
        assert r.choices[0].message.content == "你好，世界" and r.choices[0].finish_reason == "stop"
        assert r.usage.prompt_tokens_details.cached_tokens == 3 and r.usage.completion_tokens == 4
        sent = engine.calls[-1]
        assert sent["sampling_params"]["temperature"] == 0.5 and sent["sampling_params"]["max_new_tokens"] == 9
        assert "stop" not in sent["sampling_params"] and sent["rid"] == raw.headers["x-request-id"] + "-0"
        assert engine.tokenizer_manager.abort_calls[-1] == {"rid": sent["rid"], "abort_all": False}

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

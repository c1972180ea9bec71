"""POST /tokenize and /detokenize (vLLM's shapes) on the test server; counts checked against what the OpenAI SDK's
chat requests report."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import API_KEY, MODEL_NAME
from tests.test_tools_api import WEATHER

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "北京今天天气怎么样？"}]


def post(server, path: str, body: dict) -> dict:
    r = httpx.post(server.base_url + path, json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_prompt_round_trips(server):
    text = "def f(x):\n    return {'a': x}  # 北京"
    r = post(server, "/tokenize", {"model": MODEL_NAME, "prompt": text, "return_token_strs": True})
    assert r["count"] == len(r["tokens"]) == len(r["token_strs"]) and r["max_model_len"] == 4096
    assert post(server, "/detokenize", {"model": MODEL_NAME, "tokens": r["tokens"]}) == {"prompt": text}


@pytest.mark.parametrize("tools", [None, [WEATHER]], ids=["plain", "tools"])
def test_chat_tokens_are_what_a_chat_request_sends(server, client, tools):
    body = {"model": MODEL_NAME, "messages": MESSAGES, **({"tools": tools} if tools else {})}
    counted = post(server, "/tokenize", body)
    completion = client.chat.completions.create(max_tokens=1, **body)
    assert counted["count"] == completion.usage.prompt_tokens
    without_prompt = post(server, "/tokenize", {**body, "add_generation_prompt": False})
    assert without_prompt["count"] < counted["count"]
    assert counted["tokens"][: without_prompt["count"]] == without_prompt["tokens"]


@pytest.mark.parametrize(("path", "body", "status", "param"), [
    ("/tokenize", {"prompt": "a", "messages": MESSAGES}, 400, "prompt"),
    ("/tokenize", {}, 400, "prompt"),
    ("/tokenize", {"model": "nope", "prompt": "a"}, 404, "model"),
    ("/detokenize", {"tokens": [10, 99999999]}, 400, "tokens"),
    ("/detokenize", {"tokens": [-1]}, 400, "tokens[0]"),
    ("/detokenize", {"tokens": [5] * 131_073}, 400, "tokens"),  # (at most the window or 131,072)
])
def test_bad_requests_in_openai_shape(server, path, body, status, param):
    r = httpx.post(server.base_url + path, json=body)
    assert r.status_code == status and r.json()["error"]["param"] == param
    if body == {}:
        assert r.json()["error"]["message"] == "Send prompt (text) or messages (a chat)."


def test_the_most_tokens_detokenized_at_once(server):
    r = httpx.post(server.base_url + "/detokenize", json={"tokens": [100] * 131_072}, timeout=120)
    assert r.status_code == 200 and len(r.json()["prompt"]) >= 131_072


def test_tokenize_needs_the_key_when_keys_are_set(auth_server):
    assert httpx.post(auth_server.base_url + "/tokenize", json={"prompt": "a"}).status_code == 401
    r = httpx.post(auth_server.base_url + "/tokenize", json={"prompt": "a"},
                   headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200 and r.json()["count"] >= 1

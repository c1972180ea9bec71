"""The OpenAI dialect end to end: the official `openai` SDK against a real server with the tiny model."""

from __future__ import annotations

import threading

import httpx
import openai
import pytest

from tests.conftest import API_KEY, MODEL_NAME
from tests.live_server import tokens_through


def chat(client: openai.OpenAI, content: str = "Hello", **kwargs):
    return client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": content}], **kwargs)


def test_health_and_models(server, client):
    assert httpx.get(server.base_url + "/health").json() == {"status": "ok"}
    probe = httpx.head(server.base_url + "/health")  # load balancers' probes
    assert probe.status_code == 200 and probe.content == b""
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL_NAME]
    assert models.data[0].object == "model"
    assert client.models.retrieve(MODEL_NAME).id == MODEL_NAME
    assert client.models.retrieve("alias-model").id == "alias-model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_chat_basic_shape_and_usage(client):
    r = chat(client, max_tokens=12, temperature=0.7, seed=3)
    assert r.id.startswith("chatcmpl-")
    assert r.object == "chat.completion"
    assert r.model == MODEL_NAME
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0
    assert 0 < r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_max_tokens_gives_length(client):
    r = chat(client, max_tokens=5, temperature=1.0, extra_body={"ignore_eos": True})
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5
    r = chat(client, max_completion_tokens=4, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 4


def test_streaming_joins_to_non_streaming_at_temperature_zero(client):
    kwargs = dict(max_tokens=40, temperature=0)
    whole = chat(client, "Write a haiku about the sea", **kwargs)
    stream = chat(client, "Write a haiku about the sea", stream=True, **kwargs)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert all(c.id == chunks[0].id and c.id.startswith("chatcmpl-") for c in chunks)


def test_stream_include_usage(client):
    stream = chat(client, stream=True, max_tokens=6, stream_options={"include_usage": True},
                  extra_body={"ignore_eos": True})
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 6
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize("n", [1, 2])
def test_a_length_finish_comes_on_the_last_tokens_chunk(client, n):
    """As vLLM and SGLang frame it (scripts and their suites read the last text from the chunk that carries
    finish_reason): each choice has one chunk with finish_reason, and when max_tokens ends it, that chunk
    carries the last token's text; chat and completions alike."""
    common = dict(model=MODEL_NAME, stream=True, max_tokens=6, n=n, temperature=0, extra_body={"ignore_eos": True})
    streams = {
        "chat": client.chat.completions.create(messages=[{"role": "user", "content": "Hello"}], **common),
        "completions": client.completions.create(prompt="Once upon a time", **common),
    }
    for kind, stream in streams.items():
        finishes: dict[int, object] = {}
        for chunk in stream:
            for choice in chunk.choices:
                if choice.finish_reason is not None:
                    assert choice.index not in finishes, kind
                    finishes[choice.index] = choice
        assert sorted(finishes) == list(range(n)), kind
        for choice in finishes.values():
            assert choice.finish_reason == "length"
            assert (choice.delta.content if kind == "chat" else choice.text), kind


def test_same_seed_same_output(client):
    a = chat(client, "Tell me a story", max_tokens=20, temperature=1.0, seed=1234)
    b = chat(client, "Tell me a story", max_tokens=20, temperature=1.0, seed=1234)
    c = chat(client, "Tell me a story", max_tokens=20, temperature=1.0, seed=4321)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.choices[0].message.content != c.choices[0].message.content


def test_stop_string_ends_generation(client):
    answer = chat(client, "count", max_tokens=30, temperature=0, logprobs=True, extra_body={"ignore_eos": True})
    free = answer.choices[0].message.content
    assert len(free) > 6
    stop = free[3:6]
    r = chat(client, "count", max_tokens=30, temperature=0, stop=[stop], logprobs=True, extra_body={"ignore_eos": True})
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == free[: free.index(stop)]
    # The engine runs on until its abort lands; the usage and the logprobs end at the stop string's token.
    assert r.usage.completion_tokens == tokens_through(answer.choices[0].logprobs.content, stop)
    assert len(r.choices[0].logprobs.content) == r.usage.completion_tokens


def test_message_forms(client):
    r = client.chat.completions.create(
        model=MODEL_NAME,
        max_tokens=5,
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "system", "content": [{"type": "text", "text": "Really brief."}]},
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Again"},
        ],
        extra_body={"some_unknown_field": {"nested": True}},
    )
    assert r.choices[0].message.role == "assistant"


def test_completions(client):
    r = client.completions.create(model=MODEL_NAME, prompt="def fib(n):", max_tokens=8,
                                  extra_body={"ignore_eos": True})
    assert r.id.startswith("cmpl-") and r.object == "text_completion"
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 8
    pieces = list(client.completions.create(model=MODEL_NAME, prompt="def fib(n):", max_tokens=8, temperature=0,
                                            stream=True, extra_body={"ignore_eos": True}))
    whole = client.completions.create(model=MODEL_NAME, prompt="def fib(n):", max_tokens=8, temperature=0,
                                      extra_body={"ignore_eos": True})
    assert "".join(p.choices[0].text for p in pieces if p.choices) == whole.choices[0].text
    ids = client.completions.create(model=MODEL_NAME, prompt=[10, 11, 12], max_tokens=3,
                                    extra_body={"ignore_eos": True})
    assert ids.usage.prompt_tokens == 3


def test_alias_model_name_accepted(client):
    r = client.chat.completions.create(model="qwen2.5-coder-32b-instruct", max_tokens=2,
                                       messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.role == "assistant"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"max_tokens": "many"}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": "hello"}, "messages"),
        ({"n": 17}, "n"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content[0]"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!", "parameters": {}}}]},
         "tools[0].function.name"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
         "tools[0].function.parameters"),
    ],
)
def test_invalid_parameters_are_400_naming_the_param(client, body, param):
    payload = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], **body}
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/chat/completions", body=payload, cast_to=object)
    assert err.value.status_code == 400
    error = err.value.body
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


def test_malformed_json_is_400(server):
    r = httpx.post(server.base_url + "/v1/chat/completions", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400
    body = r.json()["error"]
    assert body["type"] == "invalid_request_error" and set(body) == {"message", "type", "param", "code"}
    assert "Traceback" not in r.text


def test_unknown_model_and_route_are_404(server, client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["param"] == "model" and err.value.body["code"] == "model_not_found"
    r = httpx.post(server.base_url + "/v1/not/a/route", json={})
    assert r.status_code == 404 and r.json()["error"]["type"]


def test_oversized_body_is_413(client):
    with pytest.raises(openai.APIStatusError) as err:
        chat(client, "x" * (3 * 1024 * 1024), max_tokens=1)
    assert err.value.status_code == 413
    assert err.value.body["code"] == "request_too_large"


def test_context_window_exceeded_is_400_with_numbers(client):
    with pytest.raises(openai.BadRequestError) as err:
        chat(client, "hello", max_tokens=5000)
    body = err.value.body
    assert body["code"] == "context_length_exceeded" and body["param"] == "max_tokens"
    assert "4096" in body["message"] and "5000" in body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        chat(client, "word " * 5000, max_tokens=1)
    assert err.value.body["code"] == "context_length_exceeded"
    assert "--context-length" in err.value.body["message"]  # names the setting that governs the window


def test_bad_input_does_not_disturb_concurrent_requests(client):
    results: dict[str, object] = {}

    def good():
        results["good"] = chat(client, "Hello there", max_tokens=30, extra_body={"ignore_eos": True})

    thread = threading.Thread(target=good)
    thread.start()
    for _ in range(5):
        with pytest.raises(openai.BadRequestError):
            chat(client, temperature=9)
    thread.join(60)
    assert results["good"].usage.completion_tokens == 30


def test_concurrent_requests_all_answered(client):
    outputs: list[object] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        r = chat(client, f"Request {i}", max_tokens=15, temperature=0, extra_body={"ignore_eos": True})
        with lock:
            outputs.append((i, r))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(outputs) == 8
    for i, r in outputs:  # each equals the same request run alone
        alone = chat(client, f"Request {i}", max_tokens=15, temperature=0, extra_body={"ignore_eos": True})
        assert r.choices[0].message.content == alone.choices[0].message.content


def test_auth(auth_server):
    base = auth_server.base_url + "/v1"
    for key in (API_KEY, "sk-second-key"):
        ok = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
        assert ok.models.list().data[0].id == MODEL_NAME
        assert chat(ok, max_tokens=2).choices
    bad = openai.OpenAI(base_url=base, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.models.list()
    assert err.value.body["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        chat(bad, max_tokens=2)
    missing = httpx.post(base + "/chat/completions", json={})
    assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["error"]["message"]
    assert httpx.get(auth_server.base_url + "/health").status_code == 200
    assert API_KEY not in auth_server.log() and "sk-second-key" not in auth_server.log()


def test_duplicate_tool_names_are_400(client):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    with pytest.raises(openai.BadRequestError) as err:
        chat(client, tools=[tool, tool])
    assert err.value.body["param"] == "tools" and "'f'" in err.value.body["message"]


def test_models_errors_follow_the_callers_dialect(auth_server):
    r = httpx.get(auth_server.base_url + "/v1/models", headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 401
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "authentication_error"
    r = httpx.get(auth_server.base_url + "/v1/models")
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_n_choices(client):
    r = chat(client, "Tell me a story", n=3, max_tokens=8, seed=5, extra_body={"ignore_eos": True})
    assert [c.index for c in r.choices] == [0, 1, 2]
    texts = [c.message.content for c in r.choices]
    assert len(set(texts)) > 1  # seeds 5, 6, 7
    single = chat(client, "Tell me a story", max_tokens=8, seed=5, extra_body={"ignore_eos": True})
    # Completions add up over the choices; the prompt is counted once, as OpenAI does.
    assert r.usage.completion_tokens == 24 and r.usage.prompt_tokens == single.usage.prompt_tokens
    assert texts[0] == single.choices[0].message.content
    stream = chat(client, "Tell me a story", n=2, max_tokens=8, seed=5, stream=True,
                  stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    streamed, finishes, usage = {0: "", 1: ""}, {}, None
    for c in stream:
        for choice in c.choices:
            streamed[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
        usage = c.usage or usage
    assert [streamed[0], streamed[1]] == texts[:2]
    assert finishes == {0: "length", 1: "length"} and usage.completion_tokens == 16
    completions = client.completions.create(model=MODEL_NAME, prompt="def f():", n=2, max_tokens=4, seed=1,
                                            extra_body={"ignore_eos": True})
    assert [c.index for c in completions.choices] == [0, 1] and completions.usage.completion_tokens == 8


def test_version_answers_without_a_key(server, auth_server):
    for s in (server, auth_server):
        r = httpx.get(s.base_url + "/version")
        assert r.status_code == 200 and r.json()["version"]

"""The Anthropic Messages API against a real server, with the official `anthropic` SDK as the client."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from tests.conftest import API_KEY, MODEL_NAME
from tests.live_server import LiveServer, start_server

WINDOW = 4096  # the `server` fixture's context length
USER = [{"role": "user", "content": "Say hi."}]


@pytest.fixture()
def claude(server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def _request_id_matches(exc: anthropic.APIStatusError) -> None:
    assert exc.request_id and exc.request_id.startswith("req_")
    assert isinstance(exc.body, dict) and exc.body["type"] == "error"
    assert exc.body["request_id"] == exc.request_id


# -- create / stream / count ----------------------------------------------------------------------------


def test_create(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=USER)
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == "claude-sonnet-4-5"
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert all(block.type == "text" for block in message.content)
    usage = message.usage
    assert usage.input_tokens > 0 and 0 < usage.output_tokens <= 16
    assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens is not None
    assert message._request_id and message._request_id.startswith("req_")


@pytest.mark.parametrize("model", [MODEL_NAME, "alias-model", "claude-3-5-haiku-20241022", "claude-opus-4-8"])
def test_model_names(claude: anthropic.Anthropic, model: str) -> None:
    message = claude.messages.create(model=model, max_tokens=2, messages=USER)
    assert message.model == model


def test_stream_final_message(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=24, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.id.startswith("msg_") and final.stop_reason in ("end_turn", "max_tokens")
    assert "".join(b.text for b in final.content if b.type == "text") == text
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def test_count_tokens_plain_and_beta(claude: anthropic.Anthropic) -> None:
    tools = [{"name": "get_weather", "description": "Weather for a city.",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    kwargs = {"model": "claude-sonnet-4-5", "system": "Be brief.", "messages": USER}
    plain = claude.messages.count_tokens(**kwargs).input_tokens
    beta = claude.beta.messages.count_tokens(**kwargs).input_tokens
    with_tools = claude.messages.count_tokens(**kwargs, tools=tools).input_tokens
    assert plain == beta > 0
    assert with_tools > plain
    usage = claude.messages.create(max_tokens=1, **kwargs).usage
    assert usage.input_tokens + usage.cache_read_input_tokens == plain


def test_count_tokens_unknown_model(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="gpt-4o", messages=USER)


def test_sampling_parameters(claude: anthropic.Anthropic) -> None:
    # This SDK release no longer has arguments for them; older ones and Claude Code still send them.
    greedy = {"model": "claude-sonnet-4-5", "max_tokens": 12, "messages": USER, "extra_body": {"temperature": 0.0}}
    first = claude.messages.create(**greedy)
    second = claude.messages.create(**greedy)
    assert first.content == second.content
    claude.messages.create(model="claude-sonnet-4-5", max_tokens=4, messages=USER,
                           extra_body={"temperature": 0.7, "top_p": 0.9, "top_k": 40})


def test_stop_sequences(claude: anthropic.Anthropic) -> None:
    stops = [" ", "e", "a", "t", "s"]  # the random model writes one of these within a few tokens
    for _ in range(5):
        message = claude.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=USER, stop_sequences=stops)
        if message.stop_reason != "max_tokens":
            break
    assert message.stop_reason in ("stop_sequence", "end_turn")
    if message.stop_reason == "stop_sequence":
        assert message.stop_sequence in stops
        text = "".join(b.text for b in message.content if b.type == "text")
        assert not any(stop in text for stop in stops)
    else:
        assert message.stop_sequence is None


def test_conversation_shapes(claude: anthropic.Anthropic) -> None:
    """System blocks, a first-position and a trailing system message, thinking history, unknown block types
    and unknown fields: all accepted."""
    messages = [
        {"role": "system", "content": "Early instructions."},
        {"role": "user", "content": [{"type": "text", "text": "Hello", "cache_control": {"type": "ephemeral"}},
                                     {"type": "future_block", "payload": 1}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Greet back.", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Hi!", "citations": None},
        ]},
        {"role": "user", "content": "What now?"},
        {"role": "system", "content": [{"type": "text", "text": "Reminder: be brief."}]},
    ]
    message = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=4, messages=messages,
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        thinking={"type": "enabled", "budget_tokens": 1024}, metadata={"user_id": "u-1"},
        extra_body={"context_management": {"edits": []}, "output_config": {"effort": "low"}, "unknown_field": 1},
    )
    assert message.stop_reason in ("end_turn", "max_tokens")
    for thinking in ({"type": "adaptive"}, {"type": "disabled"}):
        claude.messages.create(model="claude-sonnet-4-5", max_tokens=2, messages=USER, thinking=thinking)


def test_max_tokens_clamped_to_window(claude: anthropic.Anthropic) -> None:
    """max_tokens beyond what the window leaves is clamped, not rejected (as Claude Code's 32000 needs)."""
    filler = "word " * 100
    prompt_tokens = claude.messages.count_tokens(model="claude-x", messages=USER).input_tokens
    per_filler = claude.messages.count_tokens(model="claude-x", messages=[{"role": "user", "content": filler}]
                                              ).input_tokens - prompt_tokens
    content = filler * ((WINDOW - 40 - prompt_tokens) // max(per_filler, 1))
    message = claude.messages.create(model="claude-x", max_tokens=32000,
                                     messages=[{"role": "user", "content": content}])
    used = message.usage.input_tokens + message.usage.cache_read_input_tokens
    assert WINDOW - 200 < used < WINDOW
    assert message.usage.output_tokens <= WINDOW - used


# -- errors ---------------------------------------------------------------------------------------------


def test_prompt_too_long(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "word " * 5000}])
    exc = info.value
    assert exc.type == "invalid_request_error"
    match = re.match(r"prompt is too long: (\d+) tokens > (\d+) maximum \(.*--context-length", exc.api_message or "")
    assert match and int(match.group(1)) > WINDOW and int(match.group(2)) == WINDOW
    _request_id_matches(exc)


def test_bad_request_names_the_field(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(model="claude-x", max_tokens=10, messages=USER, extra_body={"temperature": 1.5})
    assert "temperature" in (info.value.api_message or "")
    _request_id_matches(info.value)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(model="claude-x", max_tokens=10,
                               messages=[{"role": "user", "content": [{"type": "text", "text": "What is it?"}, image]}])
    assert "messages[0].content[1]" in (info.value.api_message or "")
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(model="claude-x", max_tokens=10,
                               messages=[*USER, {"role": "assistant", "content": "Prefilled"}])


@pytest.mark.parametrize(("body", "field"), [
    (b'{"model": "claude-x", "max_tokens": "ten", "messages": []}', "max_tokens"),
    (b'{"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}', "max_tokens"),
    (b'{"model": "claude-x", "max_tokens": 5, "messages": [{"role": "robot", "content": "hi"}]}', "messages[0].role"),
    (b'{"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text"}]}]}',
     "messages[0].content[0]"),
    ((b'{"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], '
      b'"tool_choice": {"type": "any"}}'), "tool_choice"),
    (b'{"model": "claude-x", "max_tokens": 5', None),
])
def test_malformed_requests(server: LiveServer, body: bytes, field: str | None) -> None:
    response = httpx.post(server.base_url + "/v1/messages", content=body,
                          headers={"content-type": "application/json", "anthropic-version": "2023-06-01"})
    assert response.status_code == 400
    payload = response.json()
    assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    assert payload["request_id"] == response.headers["request-id"]
    if field is not None:
        assert field in payload["error"]["message"]


def test_unknown_model(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        claude.messages.create(model="gpt-4o", max_tokens=4, messages=USER)
    assert info.value.type == "not_found_error"
    _request_id_matches(info.value)


def test_request_too_large(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        claude.messages.create(model="claude-x", max_tokens=4, messages=[{"role": "user", "content": "x" * 3_000_000}])
    assert info.value.status_code == 413
    assert isinstance(info.value, anthropic.ContentTooLargeError)
    assert info.value.type == "request_too_large"
    _request_id_matches(info.value)


def test_unknown_route(server: LiveServer) -> None:
    response = httpx.post(server.base_url + "/v1/messages/batches/nope", json={},
                          headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert response.headers["request-id"] == response.json()["request_id"]


@pytest.fixture(scope="module")
def broken_server(server_logs: Path) -> Iterator[LiveServer]:
    """A server whose model cannot load: every request meets EngineUnavailable."""
    s = start_server("--model", "/nonexistent/model", log_dir=server_logs, wait=False)
    try:
        for _ in range(300):
            try:
                if httpx.get(s.base_url + "/health", timeout=2).json().get("status") == "failed":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield s
    finally:
        s.stop()


def test_engine_unavailable_is_overloaded(broken_server: LiveServer) -> None:
    client = anthropic.Anthropic(base_url=broken_server.base_url, api_key="unused", max_retries=0, timeout=30)
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="claude-x", max_tokens=4, messages=USER)
    assert info.value.status_code == 529 and isinstance(info.value, anthropic.OverloadedError)
    assert info.value.type == "overloaded_error"
    _request_id_matches(info.value)


# -- auth -----------------------------------------------------------------------------------------------


def test_api_key_and_auth_token(auth_server: LiveServer) -> None:
    by_key = anthropic.Anthropic(base_url=auth_server.base_url, api_key=API_KEY, max_retries=0)
    by_token = anthropic.Anthropic(base_url=auth_server.base_url, api_key=None, auth_token=API_KEY, max_retries=0)
    for client in (by_key, by_token):
        assert client.messages.create(model="claude-x", max_tokens=2, messages=USER).usage.input_tokens > 0
        assert client.messages.count_tokens(model="claude-x", messages=USER).input_tokens > 0


@pytest.mark.parametrize("credentials", [{"api_key": "sk-wrong"}, {"api_key": None, "auth_token": "sk-wrong"}])
def test_wrong_key(auth_server: LiveServer, credentials: dict) -> None:
    client = anthropic.Anthropic(base_url=auth_server.base_url, max_retries=0, **credentials)
    with pytest.raises(anthropic.AuthenticationError) as info:
        client.messages.create(model="claude-x", max_tokens=2, messages=USER)
    assert info.value.type == "authentication_error"
    _request_id_matches(info.value)


def test_missing_key(auth_server: LiveServer) -> None:
    response = httpx.post(auth_server.base_url + "/v1/messages?beta=true", json={"model": "claude-x"},
                          headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert "x-api-key" in response.json()["error"]["message"]  # the header Anthropic's clients send


def test_either_key_header_may_match(auth_server: LiveServer) -> None:
    """A gateway or client may send both headers, one of them stale: either one matching is enough."""
    url = auth_server.base_url + "/v1/messages/count_tokens"
    body = {"model": "claude-x", "messages": USER}
    for headers, status in [({"authorization": "Bearer sk-stale", "x-api-key": API_KEY}, 200),
                            ({"authorization": f"Bearer {API_KEY}", "x-api-key": "sk-stale"}, 200),
                            ({"authorization": "Bearer sk-stale", "x-api-key": "sk-stale-too"}, 401)]:
        response = httpx.post(url, json=body, headers={"anthropic-version": "2023-06-01", **headers})
        assert response.status_code == status, (headers, response.text)


# -- models ---------------------------------------------------------------------------------------------


def test_models_in_anthropic_shape(claude: anthropic.Anthropic, server: LiveServer) -> None:
    page = claude.models.list()
    assert [m.id for m in page.data] == [MODEL_NAME]
    assert page.data[0].type == "model" and page.data[0].display_name and page.data[0].created_at
    assert page.data[0].max_input_tokens == WINDOW and page.data[0].lifecycle == "active"
    raw = httpx.get(server.base_url + "/v1/models", headers={"anthropic-version": "2023-06-01"}).json()
    assert raw["has_more"] is False and raw["first_id"] == raw["last_id"] == MODEL_NAME
    assert claude.models.retrieve("claude-opus-4-8").id == "claude-opus-4-8"
    assert claude.models.retrieve("alias-model").id == "alias-model"
    with pytest.raises(anthropic.NotFoundError):
        claude.models.retrieve("gpt-4o")
    openai_shape = httpx.get(server.base_url + "/v1/models").json()
    assert openai_shape["object"] == "list" and openai_shape["data"][0]["id"] == MODEL_NAME

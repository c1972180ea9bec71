"""Raw SSE transcripts of /v1/messages (read with httpx, checked record by record), and the stream encoder on
synthetic event lists (pings and aborts: tests/test_stream_lifecycle.py)."""

from __future__ import annotations

import httpx
import pytest

from app.anthropic import render
from app.anthropic import schemas as s
from runtime.errors import EngineFailure
from runtime.types import ChatFinished, FinishReason, TextDelta, ToolCallArgs, ToolCallStart, Usage
from tests.claude_code import sse
from tests.live_server import LiveServer
from tests.test_anthropic_tools import SCHEMAS, TOOLS, USER

HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "unused"}


def _stream(server: LiveServer, **body) -> tuple[httpx.Response, sse.Transcript]:
    payload = {"model": "claude-sonnet-4-5", "max_tokens": 24, "messages": USER, "stream": True, **body}
    response = httpx.post(server.base_url + "/v1/messages?beta=true", json=payload, headers=HEADERS, timeout=120)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["request-id"].startswith("req_")
    return response, sse.check(sse.parse(response.text))


def test_text_transcript(server: LiveServer) -> None:
    _, transcript = _stream(server)
    assert [b["type"] for b in transcript.blocks] in ([], ["text"])
    assert transcript.delta is not None and transcript.delta["delta"]["stop_reason"] in ("end_turn", "max_tokens")
    usage = transcript.delta["usage"]
    assert 0 < usage["output_tokens"] <= 24
    assert usage["input_tokens"] + usage["cache_read_input_tokens"] == transcript.start["usage"]["input_tokens"]


def test_message_start_has_the_real_input_tokens(server: LiveServer) -> None:
    counted = httpx.post(server.base_url + "/v1/messages/count_tokens", headers=HEADERS,
                         json={"model": "claude-x", "messages": USER}).json()["input_tokens"]
    _, transcript = _stream(server, max_tokens=2)
    assert transcript.start["usage"]["input_tokens"] == counted


@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "get_time"}, {"type": "auto"}])
def test_tool_transcript(server: LiveServer, choice: dict) -> None:
    import jsonschema

    _, transcript = _stream(server, tools=TOOLS, tool_choice=choice, max_tokens=300)
    reason = transcript.delta["delta"]["stop_reason"]
    uses = [b for b in transcript.blocks if b["type"] == "tool_use"]
    for use in uses:
        if use["input"] is not None:  # None: the last call of a response cut off by max_tokens
            jsonschema.validate(use["input"], SCHEMAS[use["name"]])
    if choice["type"] != "auto":
        assert uses and reason in ("tool_use", "max_tokens")
    if reason == "tool_use":
        assert uses and transcript.blocks[-1]["type"] == "tool_use"


def test_error_before_streaming_is_a_status(server: LiveServer) -> None:
    response = httpx.post(server.base_url + "/v1/messages", headers=HEADERS, json={
        "model": "claude-x", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "w " * 5000}]})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("prompt is too long: ")


# -- the encoder on synthetic events --------------------------------------------------------------------


def _transcript(items: list, stops: tuple[str, ...] = ()) -> list[sse.Record]:
    """What app/streaming.py writes for these events (an exception: a failure after them)."""
    encoder = render.MessageEvents("msg_1", "claude-x", 50, stops)
    out = encoder.start()
    for item in items:
        if isinstance(item, Exception):
            out += encoder.error(item)
            break
        out += encoder.event(0, item)
    else:
        out += encoder.end()
    return sse.parse(out.decode())


USAGE = Usage(prompt_tokens=50, completion_tokens=9, cached_tokens=20)


def test_encoder_blocks_and_indexes() -> None:
    records = _transcript([
        TextDelta("Let me "), TextDelta(""), TextDelta("check."),
        ToolCallStart(0, "call_abc", "get_time"), ToolCallArgs(0, '{"zone": '), ToolCallArgs(0, '"UTC"}'),
        ToolCallStart(1, "call_def", "get_weather"), ToolCallArgs(1, '{"city": "Oslo", "unit": "celsius"}'),
        ChatFinished(FinishReason.TOOL_CALLS, USAGE, tool_calls=2),
    ])
    transcript = sse.check(records)
    assert transcript.blocks == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_abc", "name": "get_time", "input": {"zone": "UTC"}},
        {"type": "tool_use", "id": "toolu_def", "name": "get_weather", "input": {"city": "Oslo", "unit": "celsius"}},
    ]
    assert transcript.delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert transcript.delta["usage"] == {"input_tokens": 30, "output_tokens": 9, "cache_creation_input_tokens": 0,
                                         "cache_read_input_tokens": 20}
    assert transcript.start["usage"]["input_tokens"] == 50


def test_encoder_text_after_call_opens_a_new_block() -> None:
    records = _transcript([ToolCallStart(0, "call_1", "f"), ToolCallArgs(0, "{}"), TextDelta("done"),
                           ChatFinished(FinishReason.STOP, USAGE, matched_stop="END", tool_calls=1)], stops=("END",))
    transcript = sse.check(records)
    assert [b["type"] for b in transcript.blocks] == ["tool_use", "text"]
    assert transcript.delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_encoder_empty_response() -> None:
    transcript = sse.check(_transcript([ChatFinished(FinishReason.STOP, USAGE)]))
    assert transcript.blocks == [] and transcript.delta["delta"]["stop_reason"] == "end_turn"


def test_encoder_error_mid_stream_is_in_band() -> None:
    records = _transcript([TextDelta("partial"), EngineFailure("The engine failed while generating.")])
    transcript = sse.check(records)
    assert records[-1].event == "error"
    assert transcript.error == {"type": "api_error", "message": "The engine failed while generating."}


def test_event_lines_match_types() -> None:
    for event in (s.Ping(), s.MessageStop(), s.ContentBlockStop(3)):
        record = sse.parse(render.sse_record(event).decode())[0]
        assert record.event == record.data["type"]

"""Anthropic SSE transcripts: parsed into records and checked against the rules the SDK's accumulator and
Claude Code rely on (event name = data type, block order, contiguous indexes, deltas only for open blocks)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Record:
    event: str | None
    data: dict[str, Any]


def parse(text: str) -> list[Record]:
    records = []
    for chunk in text.replace("\r\n", "\n").split("\n\n"):
        if not chunk.strip():
            continue
        event, data = None, []
        for line in chunk.split("\n"):
            if line.startswith("event:"):
                event = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].strip())
        records.append(Record(event, json.loads("\n".join(data))))
    return records


@dataclass
class Transcript:
    """What a checked transcript held: the blocks as the client would assemble them, and the final state."""

    blocks: list[dict[str, Any]]
    partial_json: dict[int, str]
    start: dict[str, Any]
    delta: dict[str, Any] | None
    error: dict[str, Any] | None
    pings: int


def check(records: list[Record]) -> Transcript:
    """Assert the transcript is well formed; return what it held."""
    assert records, "empty stream"
    for r in records:
        assert r.event is not None, f"record without an event line: {r.data}"
        assert r.event == r.data.get("type"), f"event {r.event!r} carries data of type {r.data.get('type')!r}"
    body = [r for r in records if r.event != "ping"]
    pings = len(records) - len(body)
    assert body[0].event == "message_start", f"first event {body[0].event}"
    start = body[0].data["message"]
    assert start["content"] == [] and start["role"] == "assistant" and start["id"].startswith("msg_")
    assert start["usage"]["input_tokens"] > 0
    blocks: list[dict[str, Any]] = []
    partial: dict[int, str] = {}
    open_index: int | None = None
    delta = None
    for position, r in enumerate(body[1:], start=1):
        d = r.data
        if r.event == "error":
            assert position == len(body) - 1, "events after an error"
            assert set(d["error"]) >= {"type", "message"}
            return Transcript(blocks, partial, start, delta, d["error"], pings)
        assert delta is None or r.event == "message_stop", f"{r.event} after message_delta"
        if r.event == "content_block_start":
            assert open_index is None, f"block {d['index']} opened while {open_index} is open"
            assert d["index"] == len(blocks), f"block index {d['index']}, expected {len(blocks)}"
            block = dict(d["content_block"])
            if block["type"] == "tool_use":
                assert block["input"] == {} and block["id"].startswith("toolu_")
                partial[d["index"]] = ""
            elif block["type"] == "thinking":
                assert block == {"type": "thinking", "thinking": "", "signature": ""}
            else:
                assert block == {"type": "text", "text": ""}
            blocks.append(block)
            open_index = d["index"]
        elif r.event == "content_block_delta":
            assert d["index"] == open_index, f"delta for block {d['index']}, open: {open_index}"
            block = blocks[d["index"]]
            kind = d["delta"]["type"]
            if block["type"] == "thinking":  # thinking_deltas, then exactly one signature_delta, then the stop
                assert not block["signature"], f"{kind} after the thinking block's signature_delta"
                if kind == "signature_delta":
                    assert d["delta"]["signature"]
                    block["signature"] = d["delta"]["signature"]
                else:
                    assert kind == "thinking_delta", kind
                    block["thinking"] += d["delta"]["thinking"]
            elif kind == "text_delta":
                assert block["type"] == "text"
                block["text"] += d["delta"]["text"]
            else:
                assert kind == "input_json_delta" and block["type"] == "tool_use"
                partial[d["index"]] += d["delta"]["partial_json"]
        elif r.event == "content_block_stop":
            assert d["index"] == open_index, f"stop for block {d['index']}, open: {open_index}"
            if blocks[open_index]["type"] == "thinking":
                assert blocks[open_index]["signature"], "a thinking block stopped without its signature_delta"
            open_index = None
        elif r.event == "message_delta":
            assert open_index is None, "message_delta with a block still open"
            assert set(d["usage"]) >= {"input_tokens", "output_tokens", "cache_read_input_tokens",
                                       "cache_creation_input_tokens"}
            delta = d
        elif r.event == "message_stop":
            assert delta is not None and position == len(body) - 1, "message_stop out of place"
        else:
            raise AssertionError(f"unexpected event {r.event}")
    assert body[-1].event == "message_stop", "the stream did not end with message_stop"
    for index, text in partial.items():
        try:
            blocks[index]["input"] = json.loads(text) if text else {}
        except json.JSONDecodeError:  # only the last call of a response cut off by max_tokens may be partial
            assert delta is not None and delta["delta"]["stop_reason"] == "max_tokens" and index == len(blocks) - 1
            blocks[index]["input"] = None
    return Transcript(blocks, partial, start, delta, None, pings)

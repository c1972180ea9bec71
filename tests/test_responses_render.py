"""The Responses stream encoder and the whole answer (app/responses/render.py), without a server: the exact
event order and sequence numbers for text then a call, a cut-off call, custom tool input, and the whole answer
as the fold of the same events."""

from __future__ import annotations

import json

import msgspec

from app.responses import schemas as s
from app.responses.convert import ToolName
from app.responses.render import ResponseBuilder, ResponseEvents, from_result
from runtime.errors import EngineFailure
from runtime.result import ChatResult, accumulate
from runtime.types import ChatFinished, FinishReason, TextDelta, ToolCallArgs, ToolCallStart, Usage

USAGE = Usage(prompt_tokens=10, completion_tokens=5, cached_tokens=4)
NAMES = {"get": ToolName("function", "get"), "ns.find": ToolName("function", "find", "ns"),
         "apply_patch": ToolName("custom", "apply_patch")}


def builder() -> ResponseBuilder:
    return ResponseBuilder(s.ResponseObject(id="resp_1", created_at=0, model="m", status="in_progress"), NAMES)


def records(events) -> list[dict]:
    encoder = ResponseEvents(builder())
    raw = encoder.start() + b"".join(encoder.event(0, e) for e in events) + encoder.end()
    out = []
    for record in raw.decode().split("\n\n")[:-1]:
        name, data = record.split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert name == "event: " + payload["type"]
        out.append(payload)
    return out


TEXT_THEN_CALL = [TextDelta("Hi"), TextDelta(" there"), ToolCallStart(0, "call_1", "ns.find"),
                  ToolCallArgs(0, '{"a": '), ToolCallArgs(0, "1}"), ChatFinished(FinishReason.TOOL_CALLS, USAGE, None, 1)]


def test_text_then_call_in_openais_order() -> None:
    out = records(TEXT_THEN_CALL)
    types = [e["type"] for e in out]
    assert types == ["response.created", "response.in_progress",
                     "response.output_item.added", "response.content_part.added",
                     "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
                     "response.content_part.done", "response.output_item.done",
                     "response.output_item.added", "response.function_call_arguments.delta",
                     "response.function_call_arguments.delta", "response.function_call_arguments.done",
                     "response.output_item.done", "response.completed"]
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    assert out[0]["response"]["status"] == "in_progress" and out[0]["response"]["output"] == []
    added = out[2]["item"]
    assert added["type"] == "message" and added["status"] == "in_progress" and added["content"] == []
    assert out[6]["text"] == "Hi there" and out[8]["item"]["status"] == "completed"
    call = out[9]["item"]
    assert call == {"type": "function_call", "id": call["id"], "call_id": "call_1", "name": "find", "arguments": "",
                    "status": "in_progress", "namespace": "ns"}
    assert out[12]["arguments"] == '{"a": 1}' and out[13]["item"]["arguments"] == '{"a": 1}'
    final = out[-1]["response"]
    assert final["status"] == "completed" and [i["type"] for i in final["output"]] == ["message", "function_call"]
    assert final["usage"] == {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
                              "input_tokens_details": {"cached_tokens": 4},
                              "output_tokens_details": {"reasoning_tokens": 0}}


def test_the_whole_answer_is_the_fold_of_the_same_events() -> None:
    streamed = records(TEXT_THEN_CALL)[-1]["response"]
    result = ChatResult()
    for event in TEXT_THEN_CALL:
        accumulate(result, event)
    whole = msgspec.to_builtins(from_result(builder(), result))
    for a, b in zip(streamed["output"], whole["output"]):  # item ids are minted per response
        a.pop("id"), b.pop("id")
    assert {k: v for k, v in whole.items() if k != "completed_at"} == \
        {k: v for k, v in streamed.items() if k != "completed_at"}


def test_cut_off_call_and_custom_input() -> None:
    cut = records([ToolCallStart(0, "call_1", "get"), ToolCallArgs(0, '{"a'),
                   ChatFinished(FinishReason.LENGTH, USAGE, None, 0)])
    assert cut[-1]["type"] == "response.incomplete"
    assert cut[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert cut[-2]["item"]["status"] == "incomplete"
    custom = records([ToolCallStart(0, "call_2", "apply_patch"), ToolCallArgs(0, '{"input": "*** Begin\\n'),
                      ToolCallArgs(0, '+x\\n"}'), ChatFinished(FinishReason.TOOL_CALLS, USAGE, None, 1)])
    assert [e["type"] for e in custom[2:-1]] == ["response.output_item.added", "response.custom_tool_call_input.delta",
                                                 "response.custom_tool_call_input.done", "response.output_item.done"]
    assert custom[3]["delta"] == custom[4]["input"] == "*** Begin\n+x\n"
    assert custom[5]["item"]["type"] == "custom_tool_call" and custom[5]["item"]["input"] == "*** Begin\n+x\n"


def test_failure_after_the_start_is_an_error_event_then_failed() -> None:
    encoder = ResponseEvents(builder())
    raw = encoder.start() + encoder.event(0, TextDelta("x")) + encoder.error(EngineFailure("boom"))
    payloads = [json.loads(r.split("\n")[1].removeprefix("data: ")) for r in raw.decode().split("\n\n")[:-1]]
    assert [p["type"] for p in payloads[-2:]] == ["error", "response.failed"]
    assert payloads[-2]["message"] == "boom" and payloads[-2]["code"] == "server_error"
    assert payloads[-1]["response"]["status"] == "failed" and payloads[-1]["response"]["error"]["code"] == "server_error"
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))

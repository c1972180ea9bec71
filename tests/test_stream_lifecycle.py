"""The stream path in-process, in milliseconds: the real app on uvicorn in a thread of this process, fed by
a scripted engine (tests/scripted_engine.py), spoken to by the real SDKs and raw httpx. Keep-alives during a
long prefill, errors before and after the headers, aborts, stop strings around calls, finish reasons,
disconnects, request ids, and non-streamed answers equal to the fold of the stream.

Pure parts (the output pipeline, the result fold) are tested on their own at the end, without any engine.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from app.settings import Settings
from app.state import ServiceState, engine_config
from runtime.errors import InvalidRequest
from runtime.output import OutputPipeline, OutputSpec
from runtime.result import ChatResult, OutOfOrder, accumulate
from runtime.tools.hermes import HermesFormat
from runtime.types import (
    ChatFinished,
    Finished,
    FinishReason,
    Logprobs,
    TextDelta,
    Tool,
    ToolCallArgs,
    ToolCallStart,
    Usage,
)
from tests import scripted_engine
from tests.claude_code import sse as anthropic_sse
from tests.scripted_engine import SCRIPTS, ScriptedEngine
from tests.thread_server import ThreadServer

MODEL = "scripted"
GRACE = 0.2  # --first-byte-grace: the scripts' long prefills are longer
KEEP_ALIVE = 0.1  # --keep-alive-interval
USER = [{"role": "user", "content": "hi"}]
CLAUDE_HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "unused"}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@dataclass
class InProcess:
    base_url: str
    state: ServiceState

    @property
    def engine(self) -> ScriptedEngine:
        assert ScriptedEngine.latest is not None
        return ScriptedEngine.latest


@pytest.fixture(scope="module")
def live(tiny_model_dir: Path) -> Iterator[InProcess]:
    settings = Settings(model=str(tiny_model_dir), engine="tests.scripted_engine:ScriptedEngine",
                        served_model_name=MODEL, first_byte_grace=GRACE, keep_alive_interval=KEEP_ALIVE,
                        max_running_requests=4, log_level="warning")
    with ThreadServer(settings) as server:
        assert server.wait_health("ok")["status_code"] == 200
        yield InProcess(server.base_url, server.state)


@pytest.fixture(autouse=True)
def no_leftover_scripts() -> Iterator[None]:
    SCRIPTS.clear()
    yield
    SCRIPTS.clear()


@pytest.fixture
def oai(live: InProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.base_url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture
def claude(live: InProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live.base_url, api_key="unused", max_retries=0)


def play(*scripts: list) -> None:
    SCRIPTS.extend(scripts)


def wait_until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def idle(live: InProcess) -> bool:
    return live.state.admission.running == 0


# -- keep-alives while the engine is silent ------------------------------------------------------------------


def test_openai_stream_sends_headers_and_comments_during_a_long_prefill(live: InProcess, oai: openai.OpenAI):
    play([2.0, "late", FinishReason.STOP])  # long enough that a loaded machine still tells the two apart
    started = time.monotonic()
    with httpx.stream("POST", live.base_url + "/v1/chat/completions", timeout=10,
                      json={"model": MODEL, "messages": USER, "stream": True}) as response:
        assert response.status_code == 200
        raw = response.iter_raw()
        first = next(raw)
        first_at = time.monotonic() - started
        body = first + b"".join(raw)
    assert first.startswith(b": ") and first_at < 1.5  # headers and a comment, well before the first token
    text = body.decode()
    assert text.count(": keep-alive\n\n") >= 3  # every 0.1 s of silence
    assert '"late"' in text and text.endswith("data: [DONE]\n\n")

    play([0.4, "late", FinishReason.STOP])  # the SDK reads through the comments
    chunks = list(oai.chat.completions.create(model=MODEL, messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "late"


def test_anthropic_stream_pings_during_a_long_prefill(live: InProcess, claude: anthropic.Anthropic):
    play([1.5, "late", FinishReason.STOP])  # ~12 pings due: a stalled loop (a GC, a loaded core) still sends 3
    response = httpx.post(live.base_url + "/v1/messages", headers=CLAUDE_HEADERS, timeout=10,
                          json={"model": "claude-x", "max_tokens": 8, "messages": USER, "stream": True})
    transcript = anthropic_sse.check(anthropic_sse.parse(response.text))
    assert transcript.pings >= 3 and transcript.blocks == [{"type": "text", "text": "late"}]

    play([0.4, "late", FinishReason.STOP])
    with claude.messages.stream(model="claude-x", max_tokens=8, messages=USER) as stream:
        assert stream.get_final_message().content[0].text == "late"


# -- errors: statuses before the headers, in-band after --------------------------------------------------------


def test_an_engine_error_within_the_grace_time_is_a_status(live, oai, claude):
    play([InvalidRequest("The grammar does not compile.", param="response_format")])
    with pytest.raises(openai.BadRequestError) as caught:
        list(oai.chat.completions.create(model=MODEL, messages=USER, stream=True))
    assert caught.value.body["param"] == "response_format"

    play([InvalidRequest("The grammar does not compile.")])
    with pytest.raises(anthropic.BadRequestError):
        with claude.messages.stream(model="claude-x", max_tokens=8, messages=USER) as stream:
            stream.get_final_message()
    wait_until(lambda: idle(live))


def test_a_later_error_goes_in_band_and_ends_the_stream(live):
    play([0.4, InvalidRequest("The grammar does not compile.")])
    response = httpx.post(live.base_url + "/v1/chat/completions", timeout=10,
                          json={"model": MODEL, "messages": USER, "stream": True})
    assert response.status_code == 200
    records = [line for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert json.loads(records[-2][6:])["error"]["type"] == "invalid_request_error"
    assert records[-1] == "data: [DONE]"

    play([0.4, InvalidRequest("The grammar does not compile.")])
    response = httpx.post(live.base_url + "/v1/messages", headers=CLAUDE_HEADERS, timeout=10,
                          json={"model": "claude-x", "max_tokens": 8, "messages": USER, "stream": True})
    assert anthropic_sse.check(anthropic_sse.parse(response.text)).error["type"] == "invalid_request_error"


def test_an_aborted_run_is_503_in_every_dialect(live, oai, claude):
    play(["partial", FinishReason.ABORT])
    with pytest.raises(openai.InternalServerError) as caught:
        oai.chat.completions.create(model=MODEL, messages=USER)
    assert caught.value.status_code == 503

    play(["partial", FinishReason.ABORT])
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        claude.messages.create(model="claude-x", max_tokens=8, messages=USER)
    assert overloaded.value.status_code == 529

    play(["partial", FinishReason.ABORT])
    chunks = httpx.post(live.base_url + "/v1/chat/completions", timeout=10,
                        json={"model": MODEL, "messages": USER, "stream": True}).text
    assert '"service_unavailable_error"' in chunks and '"finish_reason":"abort"' not in chunks

    play(["partial", FinishReason.ABORT])
    text = httpx.post(live.base_url + "/v1/messages", headers=CLAUDE_HEADERS, timeout=10,
                      json={"model": "claude-x", "max_tokens": 8, "messages": USER, "stream": True}).text
    assert anthropic_sse.check(anthropic_sse.parse(text)).error["type"] == "overloaded_error"


# -- finishes and stop strings ------------------------------------------------------------------------------


@pytest.mark.parametrize(("script", "openai_reason", "anthropic_reason"), [
    (["a", "b", FinishReason.STOP], "stop", "end_turn"),
    (["a", "b"], "length", "max_tokens"),
])
def test_finish_reasons(oai, claude, script, openai_reason, anthropic_reason):
    play(script, script)
    assert oai.chat.completions.create(model=MODEL, messages=USER).choices[0].finish_reason == openai_reason
    assert claude.messages.create(model="claude-x", max_tokens=8, messages=USER).stop_reason == anthropic_reason


def test_a_stop_string_in_the_text_aborts_the_engine(live, oai):
    play(["one ", "two ", "END", " three", 0.5, " four", FinishReason.STOP])
    reply = oai.chat.completions.create(model=MODEL, messages=USER, stop=["END"], tools=[WEATHER])
    assert reply.choices[0].message.content == "one two " and reply.choices[0].finish_reason == "stop"
    assert live.engine.aborted == [live.engine.requests[-1].rid]


# "END" is completed by the 4th token; the engine runs on for one more (a tuple: no abort check between them).
RUNS_ON = ["one ", "two ", ("EN", "D three", " four"), " five", FinishReason.STOP]


@pytest.mark.parametrize("tools", [None, [WEATHER]], ids=["plain", "with-a-parser"])
def test_a_stopped_answer_counts_the_tokens_up_to_its_stop(live, oai, claude, tools):
    """Stop strings are matched by the output pipeline alone, with or without a parser; the usage ends at the
    token that completed the stop string, not where the engine's abort landed."""
    play(RUNS_ON, RUNS_ON, RUNS_ON)
    extra = {"tools": tools} if tools else {}
    reply = oai.chat.completions.create(model=MODEL, messages=USER, stop=["END"], **extra)
    assert reply.choices[0].message.content == "one two " and reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == 4 and live.engine.requests[-1].sampling.stop == ()
    assert live.engine.requests[-1].text_per_token  # (SGLang: a chunk of several tokens is cut per token)
    chunks = list(oai.chat.completions.create(model=MODEL, messages=USER, stop=["END"], stream=True,
                                              stream_options={"include_usage": True}, **extra))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two "
    assert chunks[-1].usage.completion_tokens == 4
    claude_tools = {"tools": [{"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}]}
    message = claude.messages.create(model="claude-x", max_tokens=16, messages=USER, stop_sequences=["END"],
                                     **(claude_tools if tools else {}))
    assert (message.stop_reason, message.stop_sequence, message.usage.output_tokens) == ("stop_sequence", "END", 4)
    assert message.content[0].text == "one two "


def test_a_stopped_completion_counts_the_tokens_up_to_its_stop(live, oai):
    play(RUNS_ON, RUNS_ON)
    completion = oai.completions.create(model=MODEL, prompt="count", stop="END")
    assert completion.choices[0].text == "one two " and completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 4 and live.engine.aborted[-1] == live.engine.requests[-1].rid
    native = httpx.post(live.base_url + "/generate", json={"text": "count", "sampling_params": {
        "stop": ["END"], "max_new_tokens": 16}}).json()
    assert native["text"] == "one two " and native["meta_info"]["completion_tokens"] == 4
    assert native["meta_info"]["finish_reason"] == {"type": "stop", "matched": "END"}


def test_a_stop_string_inside_a_call_does_not_cut_it(live, oai):
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    play([call[:12], call[12:40], call[40:], FinishReason.STOP])
    reply = oai.chat.completions.create(model=MODEL, messages=USER, stop=["\n"], tools=[WEATHER])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and not live.engine.aborted[-1:] == [live.engine.requests[-1].rid]
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"city": "Oslo"}


def test_the_whole_answer_is_the_fold_of_the_stream(oai, claude):
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    script = ["Let me look.", call[:30], call[30:], FinishReason.STOP]
    play(script, script)
    whole = oai.chat.completions.create(model=MODEL, messages=USER, tools=[WEATHER]).choices[0]
    chunks = list(oai.chat.completions.create(model=MODEL, messages=USER, tools=[WEATHER], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    arguments = "".join(tc.function.arguments or "" for c in chunks if c.choices
                        for tc in c.choices[0].delta.tool_calls or [])
    assert whole.message.content == text == "Let me look."
    assert whole.message.tool_calls[0].function.arguments == arguments
    assert whole.finish_reason == [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"

    tool = {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}
    play(script, script)
    message = claude.messages.create(model="claude-x", max_tokens=64, messages=USER, tools=[tool])
    with claude.messages.stream(model="claude-x", max_tokens=64, messages=USER, tools=[tool]) as stream:
        streamed = stream.get_final_message()
    fields = {"type", "text", "name", "input"}
    assert [b.model_dump(include=fields) for b in message.content] == [b.model_dump(include=fields)
                                                                       for b in streamed.content]
    assert message.stop_reason == streamed.stop_reason == "tool_use" and len(message.content) == 2


# -- disconnects -------------------------------------------------------------------------------------------


def test_a_client_gone_mid_stream_ends_the_generation(live: InProcess):
    play(["x", *[0.02, "x"] * 500])
    with httpx.stream("POST", live.base_url + "/v1/chat/completions", timeout=10,
                      json={"model": MODEL, "messages": USER, "stream": True}) as response:
        next(response.iter_raw())
    rid = live.engine.requests[-1].rid
    wait_until(lambda: rid in live.engine.ended and idle(live))


def test_a_client_gone_during_the_prefill_ends_the_generation(live: InProcess):
    play([5.0, "never", FinishReason.STOP])
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(live.base_url + "/v1/messages", headers=CLAUDE_HEADERS, timeout=GRACE / 2,
                   json={"model": "claude-x", "max_tokens": 8, "messages": USER})
    wait_until(lambda: bool(live.engine.requests) and live.engine.requests[-1].rid in live.engine.ended
               and idle(live))


# -- one request id, edge to engine ------------------------------------------------------------------------


def test_the_request_id_goes_from_the_edge_to_the_engine(live: InProcess, oai, claude):
    raw = oai.chat.completions.with_raw_response.create(model=MODEL, messages=USER, n=2)
    rid = raw.headers["x-request-id"]
    assert rid.startswith("req_") and raw.headers["request-id"] == rid
    assert sorted(r.rid for r in live.engine.requests[-2:]) == [f"{rid}-0", f"{rid}-1"]

    message = claude.messages.with_raw_response.create(model="claude-x", max_tokens=8, messages=USER,
                                                        extra_headers={"x-request-id": "trace-42"})
    assert message.headers["x-request-id"] == message.headers["request-id"] == "trace-42"
    assert live.engine.requests[-1].rid.startswith("trace-42-")

    weird = httpx.post(live.base_url + "/v1/chat/completions", headers={"x-request-id": "a b\x7f" * 50},
                       json={"model": MODEL, "messages": USER})
    assert weird.headers["x-request-id"].startswith("req_")
    error = httpx.post(live.base_url + "/v1/messages", headers=CLAUDE_HEADERS, json={"model": "claude-x"})
    assert error.json()["request_id"] == error.headers["request-id"]


def test_the_request_id_is_on_the_requests_log_lines(live: InProcess, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO, logger="app"):
        response = httpx.post(live.base_url + "/v1/chat/completions", headers={"x-request-id": "trace-7"},
                              json={"model": MODEL, "messages": USER})
    assert response.status_code == 200
    finish = [r for r in caplog.records if "output tokens" in r.getMessage()]
    assert finish and all(getattr(r, "request_id") == "trace-7" for r in finish)


def test_models_in_one_place_for_both_dialects(live: InProcess):
    openai_shape = httpx.get(live.base_url + "/v1/models").json()
    anthropic_shape = httpx.get(live.base_url + "/v1/models", headers=CLAUDE_HEADERS).json()
    assert openai_shape["object"] == "list" and openai_shape["data"][0]["id"] == MODEL
    assert anthropic_shape["data"][0]["type"] == "model" and anthropic_shape["first_id"] == MODEL


# -- settings to the engine ---------------------------------------------------------------------------------


def test_engine_config_is_derived_from_the_settings_with_a_pass_through(live: InProcess, tiny_model_dir: Path):
    config = live.engine.config
    assert config.served_model_name == MODEL and config.max_running_requests == 4 and config.extra == ()
    derived = engine_config(Settings(model="m", seed=3, tp_size=2, threads=5,
                                     engine_args=("schedule_policy=lpm", "enable-mixed-chunk=true")), "/models/m")
    assert (derived.model_path, derived.seed, derived.tp_size, derived.threads) == ("/models/m", 3, 2, 5)
    assert derived.extra == (("schedule_policy", "lpm"), ("enable_mixed_chunk", "true"))
    with pytest.raises(ValueError, match="name=value"):
        engine_config(Settings(engine_args=("oops",)), "/m")


# -- the output pipeline, alone --------------------------------------------------------------------------------

USAGE = Usage(5, 3)
TOOLS = (Tool("get_weather", "", WEATHER["function"]["parameters"]),)


def _through(spec: OutputSpec, pieces: list[str], finished: Finished = Finished(FinishReason.STOP, USAGE)):
    pipeline = OutputPipeline(spec)
    out = []
    for piece in pieces:
        out += pipeline.push(TextDelta(piece, 1))
        if pipeline.stopped:
            break
    return pipeline, out + pipeline.finish(finished)


def test_pipeline_stop_string_split_across_deltas():
    pipeline, out = _through(OutputSpec(text_stops=("STOP",)), ["ab", "cS", "TO", "Pde"])
    assert out == [TextDelta("ab"), TextDelta("c"), ChatFinished(FinishReason.STOP, Usage(5, 4), "STOP")]
    assert pipeline.stopped_by == "STOP"


def test_pipeline_holds_a_possible_stop_until_the_end():
    _, out = _through(OutputSpec(text_stops=("STOP",)), ["abST"])
    assert out == [TextDelta("ab"), TextDelta("ST"), ChatFinished(FinishReason.STOP, USAGE)]


def test_pipeline_calls_pass_stops_and_set_the_reason():
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "a\\nb"}}\n</tool_call>'
    for split in range(1, len(call)):  # a fresh parser per split
        _, out = _through(OutputSpec(HermesFormat().parser(TOOLS), ("\n",)), [call[:split], call[split:]])
        result = ChatResult()
        for event in out:
            accumulate(result, event)
        assert result.finished.reason is FinishReason.TOOL_CALLS and result.finished.tool_calls == 1
        assert json.loads(result.calls[0].arguments) == {"city": "a\nb"}


def test_a_stop_string_s_start_before_a_call_is_text_before_the_call_never_a_match_across_it():
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "x"}}\n</tool_call>'
    _, out = _through(OutputSpec(HermesFormat().parser(TOOLS), ("ab",)), ["I will a", call, "b then"])
    result = ChatResult()
    for event in out:
        accumulate(result, event)
    assert isinstance(out[1], TextDelta) and out[1].text == "a"  # before the call, not after it
    assert result.text == "I will ab then"
    assert result.finished.matched_stop is None and result.finished.reason is FinishReason.TOOL_CALLS


def test_pipeline_escapes_control_characters_in_json_text():
    _, out = _through(OutputSpec(json_text=True), ['{"a": "x', '\ty"}'])
    assert "".join(e.text for e in out if isinstance(e, TextDelta)) == '{"a": "x\\u0009y"}'


def test_pipeline_drops_what_comes_after_a_stop():
    pipeline = OutputPipeline(OutputSpec(text_stops=("!",)))
    assert pipeline.push(TextDelta("h", 1)) == [TextDelta("h")]
    assert pipeline.push(TextDelta("i!", 2)) == [TextDelta("i")]
    assert pipeline.push(Logprobs(())) == [] and pipeline.push(TextDelta("more", 1)) == []
    assert pipeline.push(Finished(FinishReason.ABORT, Usage(5, 4, cached_tokens=2))) == [
        ChatFinished(FinishReason.STOP, Usage(5, 3, cached_tokens=2), "!")]


def _stopped_usage(spec: OutputSpec, deltas: list[TextDelta], engine_tokens: int) -> tuple[str, ChatFinished]:
    """The text a pipeline sends and its finish, the engine's Finished counting `engine_tokens` (an abort's)."""
    pipeline = OutputPipeline(spec)
    out = [e for delta in deltas for e in pipeline.push(delta)]
    out += pipeline.push(Finished(FinishReason.ABORT if pipeline.stopped else FinishReason.STOP,
                                  Usage(5, engine_tokens, reasoning_tokens=engine_tokens)))
    assert isinstance(out[-1], ChatFinished)
    return "".join(e.text for e in out if isinstance(e, TextDelta)), out[-1]


def test_pipeline_usage_ends_at_the_token_that_completed_the_stop_string():
    # "END" split over tokens 3 and 4; the engine ran on to token 7 before its abort came.
    deltas = [TextDelta("one ", 1), TextDelta("two ", 1), TextDelta("EN", 1), TextDelta("D thr", 1),
              TextDelta("ee", 1), TextDelta(" four", 2)]
    for spec in (OutputSpec(text_stops=("END",)), OutputSpec(HermesFormat().parser(TOOLS), ("END",))):
        text, finished = _stopped_usage(spec, deltas, engine_tokens=7)
        assert text == "one two " and finished.reason is FinishReason.STOP and finished.matched_stop == "END"
        assert finished.usage == Usage(5, 4, reasoning_tokens=4)


def test_pipeline_usage_counts_tokens_whose_text_came_later():
    # Tokens 2 and 3 made no text of their own (half a character): the engine counts them in token 4's delta.
    text, finished = _stopped_usage(OutputSpec(text_stops=("é!",)), [TextDelta("a", 1), TextDelta("é!", 3),
                                                                      TextDelta("b", 1)], engine_tokens=5)
    assert (text, finished.usage.completion_tokens) == ("a", 4)


def test_pipeline_stop_inside_text_the_parser_held_counts_up_to_the_token_that_released_it():
    # "<t" could begin "<tool_call>": the parser holds it until token 2 shows it does not; only then is it text
    # outside calls, where the stop string matches.
    spec = OutputSpec(HermesFormat().parser(TOOLS), ("<t",))
    text, finished = _stopped_usage(spec, [TextDelta("a<t", 1), TextDelta("x", 1), TextDelta("y", 1)], 3)
    assert (text, finished.matched_stop, finished.usage.completion_tokens) == ("a", "<t", 2)
    # Released by the end of the output instead: the tokens whose text came in (not the end-of-turn token).
    text, finished = _stopped_usage(spec, [TextDelta("a<t", 1)], engine_tokens=2)
    assert (text, finished.reason, finished.matched_stop, finished.usage.completion_tokens) == (
        "a", FinishReason.STOP, "<t", 1)


def test_pipeline_without_a_stop_keeps_the_engines_usage():
    text, finished = _stopped_usage(OutputSpec(text_stops=("END",)), [TextDelta("EN", 1), TextDelta("d", 1)], 3)
    assert (text, finished.matched_stop, finished.usage) == ("ENd", None, Usage(5, 3, reasoning_tokens=3))


# -- the fold, alone ---------------------------------------------------------------------------------------


def test_fold_keeps_output_order_and_drops_an_unfinished_call():
    result = ChatResult()
    for event in [TextDelta("a"), TextDelta("b"), ToolCallStart(0, "call_1", "f"), ToolCallArgs(0, "{}"),
                  TextDelta("c"), ToolCallStart(1, "call_2", "g"), ToolCallArgs(1, '{"x'),
                  ChatFinished(FinishReason.LENGTH, USAGE, tool_calls=1)]:
        accumulate(result, event)
    assert result.text == "abc" and [c.name for c in result.calls] == ["f"]
    assert [type(b).__name__ for b in result.complete_blocks] == ["TextBlock", "CallBlock", "TextBlock"]


def test_fold_refuses_events_out_of_order():
    with pytest.raises(OutOfOrder):
        accumulate(ChatResult(), ToolCallArgs(0, "{}"))
    done = accumulate(ChatResult(), ChatFinished(FinishReason.STOP, USAGE))
    with pytest.raises(OutOfOrder):
        accumulate(done, TextDelta("late"))


def test_the_engine_module_is_the_scripted_one(live: InProcess):
    assert isinstance(live.engine, scripted_engine.ScriptedEngine)


# -- the tool checks every dialect shares ----------------------------------------------------------------------


def test_a_chat_request_checks_its_tools_once_for_every_dialect():
    from runtime.types import ChatRequest, Message, ToolChoice, ToolChoiceMode

    messages = (Message("user", "x"),)
    with pytest.raises(InvalidRequest, match="unique") as duplicate:
        ChatRequest(messages, tools=TOOLS * 2)
    assert duplicate.value.param == "tools"
    with pytest.raises(InvalidRequest, match="not in tools") as unnamed:
        ChatRequest(messages, tools=TOOLS, tool_choice=ToolChoice(ToolChoiceMode.NAMED, "get_time"))
    assert unnamed.value.param == "tool_choice"
    assert ChatRequest(messages, tools=TOOLS, tool_choice=ToolChoice(ToolChoiceMode.NAMED, "get_weather"))

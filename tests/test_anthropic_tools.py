"""Anthropic tools and tool_choice, enforced by the same grammars as OpenAI tools. The model is random, so any
tool_use it returns is valid because of the constraint: each is checked against its schema with jsonschema."""

from __future__ import annotations

import json

import anthropic
import httpx
import jsonschema
import pytest

from tests.claude_code import sse
from tests.live_server import LiveServer

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 12},
                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME = {
    "type": "object",
    "properties": {"zone": {"type": "string", "enum": ["UTC", "CET", "PST"]},
                   "hour24": {"type": "boolean"}},
    "required": ["zone"],
    "additionalProperties": False,
}
TOOLS = [
    {"name": "get_weather", "description": "Current weather for a city.", "input_schema": WEATHER},
    {"name": "get_time", "description": "Current time in a zone.", "input_schema": TIME,
     "cache_control": {"type": "ephemeral"}},
]
SCHEMAS = {t["name"]: t["input_schema"] for t in TOOLS}
USER = [{"role": "user", "content": "What's the weather in Paris, and the time in UTC?"}]


@pytest.fixture()
def claude(server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def _tool_uses(message) -> list:
    uses = [b for b in message.content if b.type == "tool_use"]
    for use in uses:
        assert use.id.startswith("toolu_")
        jsonschema.validate(use.input, SCHEMAS[use.name])
    return uses


def test_tool_choice_any(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="claude-x", max_tokens=200, messages=USER, tools=TOOLS,
                                     tool_choice={"type": "any", "disable_parallel_tool_use": True})
    uses = _tool_uses(message)
    assert message.stop_reason == "tool_use" and len(uses) == 1
    assert message.content[-1].type == "tool_use"


def test_tool_choice_tool(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="claude-x", max_tokens=200, messages=USER, tools=TOOLS,
                                     tool_choice={"type": "tool", "name": "get_time"})
    uses = _tool_uses(message)
    assert message.stop_reason == "tool_use" and [u.name for u in uses] == ["get_time"]


def test_tool_choice_any_parallel(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="claude-x", max_tokens=300, messages=USER, tools=TOOLS,
                                     tool_choice={"type": "any"})
    uses = _tool_uses(message)
    assert len(uses) >= 1 and message.stop_reason in ("tool_use", "max_tokens")  # more calls may run out of room
    assert len({u.id for u in uses}) == len(uses)


def test_tool_choice_auto(claude: anthropic.Anthropic) -> None:
    for _ in range(3):
        message = claude.messages.create(model="claude-x", max_tokens=40, messages=USER, tools=TOOLS,
                                         tool_choice={"type": "auto"})
        uses = _tool_uses(message)
        assert message.stop_reason in ("end_turn", "max_tokens", "tool_use")
        assert (message.stop_reason == "tool_use") == bool(uses) or message.stop_reason == "max_tokens"


def test_tool_choice_none(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="claude-x", max_tokens=40, messages=USER, tools=TOOLS,
                                     tool_choice={"type": "none"})
    assert not _tool_uses(message)
    assert message.stop_reason in ("end_turn", "max_tokens")


def test_unknown_named_tool(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(model="claude-x", max_tokens=20, messages=USER, tools=TOOLS,
                               tool_choice={"type": "tool", "name": "get_stock"})
    assert "tool_choice" in (info.value.api_message or "")


def test_tool_result_round_trip(claude: anthropic.Anthropic) -> None:
    """A tool_use answered by tool_results (string, blocks, is_error) continues the conversation."""
    first = claude.messages.create(model="claude-x", max_tokens=200, messages=USER, tools=TOOLS,
                                   tool_choice={"type": "any", "disable_parallel_tool_use": True})
    use = _tool_uses(first)[0]
    history = [*USER, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]}]
    results = [{"content": "18 degrees"}, {"content": [{"type": "text", "text": "18"}, {"type": "text", "text": "C"}]},
               {"content": "unknown city", "is_error": True}]
    for result in results:
        follow_up = [*history, {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, **result}]}]
        message = claude.messages.create(model="claude-x", max_tokens=30, messages=follow_up, tools=TOOLS)
        assert message.stop_reason in ("end_turn", "max_tokens", "tool_use")
        _tool_uses(message)


def test_cut_off_call_is_not_returned(claude: anthropic.Anthropic) -> None:
    """A call cut off by max_tokens would not parse: the non-streaming response leaves it out."""
    message = claude.messages.create(model="claude-x", max_tokens=22, messages=USER, tools=TOOLS,
                                     tool_choice={"type": "tool", "name": "get_weather"})
    assert message.stop_reason == "max_tokens"
    assert not [b for b in message.content if b.type == "tool_use"]


def test_stream_tool_use(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="claude-x", max_tokens=200, messages=USER, tools=TOOLS,
                                tool_choice={"type": "any", "disable_parallel_tool_use": True}) as stream:
        final = stream.get_final_message()
    uses = _tool_uses(final)
    assert final.stop_reason == "tool_use" and len(uses) == 1


def test_stream_fragments_join_to_non_streaming_input(server: LiveServer, claude: anthropic.Anthropic) -> None:
    """Greedy, so both runs produce the same call: the streamed input_json_delta fragments join into exactly
    the JSON of the non-streaming input."""
    body = {"model": "claude-x", "max_tokens": 300, "messages": USER, "tools": TOOLS, "temperature": 0,
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True}}
    whole = claude.messages.create(**{k: v for k, v in body.items() if k != "temperature"},
                                   extra_body={"temperature": 0})
    response = httpx.post(server.base_url + "/v1/messages", json={**body, "stream": True}, timeout=120)
    transcript = sse.check(sse.parse(response.text))
    streamed = [b for b in transcript.blocks if b["type"] == "tool_use"]
    expected = _tool_uses(whole)
    assert whole.stop_reason == transcript.delta["delta"]["stop_reason"] == "tool_use"
    assert [b["input"] for b in streamed] == [u.input for u in expected]
    assert [b["name"] for b in streamed] == [u.name for u in expected]
    for index, fragments in transcript.partial_json.items():
        assert json.loads(fragments) == transcript.blocks[index]["input"]


def _recording_client(server: LiveServer) -> tuple[anthropic.Anthropic, list[dict]]:
    """A client whose request bodies are kept, to see what the SDK sent."""
    sent: list[dict] = []

    def keep(request) -> None:  # an httpx2.Request (the SDK's transport)
        if request.url.path.endswith("/v1/messages"):
            sent.append(json.loads(request.read()))

    import httpx2

    http = httpx2.Client(event_hooks={"request": [keep]}, timeout=120)
    return anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0, http_client=http), sent


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_tool_runner_continues_a_server_held_thread(server: LiveServer, stream: bool) -> None:
    """The SDK's tool runner asks for a server-held thread (`thread: create`, then `continue` with only the tool
    result and neither tools nor system): the server keeps the conversation in its store and resumes it."""
    zones: list[str] = []

    @anthropic.beta_tool
    def get_time(zone: str, hour24: bool = True) -> str:
        """Current time in a zone."""
        zones.append(zone)
        return "12:00"

    get_time.input_schema = TIME  # bounded, so a forced call always fits in max_tokens
    claude, sent = _recording_client(server)
    runner = claude.beta.messages.tool_runner(model="claude-x", max_tokens=200, messages=USER, tools=[get_time],
                                              system="Answer with tools.", stream=stream,
                                              tool_choice={"type": "any", "disable_parallel_tool_use": True},
                                              max_iterations=3)
    messages = [item.get_final_message() if stream else item for item in runner]
    assert len(messages) == 3 and len(zones) == 3 and all(m.stop_reason == "tool_use" for m in messages)
    assert [body.get("thread") for body in sent] == [
        {"type": "create"},
        {"type": "continue", "previous_message_id": messages[0].id},
        {"type": "continue", "previous_message_id": messages[1].id},
    ]
    for body in sent[1:]:  # only the new turn: the tool result, and no tools or system
        assert "tools" not in body and "system" not in body
        assert [m["role"] for m in body["messages"]] == ["user"]
        assert body["messages"][0]["content"][0]["type"] == "tool_result"
    # The server saw the whole conversation: its prompt grew by more than the tool result alone.
    assert messages[2].usage.input_tokens + messages[2].usage.cache_read_input_tokens > \
        messages[0].usage.input_tokens + messages[0].usage.cache_read_input_tokens


def test_continuing_a_thread_not_held_is_thread_not_found(server: LiveServer) -> None:
    """An id never stored (or evicted) is a 404 with `error_code: thread_not_found`, on which the SDK replays the
    whole history under a new thread. Repeating `tools` on a continue is refused."""
    url, headers = server.base_url + "/v1/messages", {"anthropic-version": "2023-06-01"}
    raw = httpx.post(url, headers=headers, json={"model": "claude-x", "max_tokens": 8, "messages": USER,
                                                  "thread": {"type": "continue", "previous_message_id": "msg_unknown"}})
    assert raw.status_code == 404
    assert raw.json()["error"]["type"] == "not_found_error"
    assert raw.json()["error"]["details"] == {"error_code": "thread_not_found"}
    created = httpx.post(url, headers=headers, json={"model": "claude-x", "max_tokens": 4, "messages": USER,
                                                      "thread": {"type": "create"}}, timeout=120)
    assert created.status_code == 200, created.text
    again = httpx.post(url, headers=headers, json={
        "model": "claude-x", "max_tokens": 4, "tools": TOOLS, "messages": [{"role": "user", "content": "More."}],
        "thread": {"type": "continue", "previous_message_id": created.json()["id"]}})
    assert again.status_code == 400 and "tools" in again.json()["error"]["message"]
    unthreaded = httpx.post(url, headers=headers, json={"model": "claude-x", "max_tokens": 4, "messages": USER},
                            timeout=120)
    assert unthreaded.status_code == 200
    later = httpx.post(url, headers=headers, json={
        "model": "claude-x", "max_tokens": 4, "messages": [{"role": "user", "content": "More."}],
        "thread": {"type": "continue", "previous_message_id": unthreaded.json()["id"]}})
    assert later.status_code == 404  # a reply outside any thread is not kept


def test_a_thread_is_linear(server: LiveServer, claude: anthropic.Anthropic) -> None:
    """Each reply of a thread can be continued once (the SDK's contract: ThreadAlreadyContinuedError, a 400,
    on which its thread replays the history under a new thread); a continue from a reply that a running request
    is continuing is ThreadContinueInFlightError; a continue that fails before it ran leaves the reply free."""
    more = [{"role": "user", "content": "More."}]
    created = claude.beta.messages.create(model="claude-x", max_tokens=4, messages=USER, thread={"type": "create"})
    resume = {"type": "continue", "previous_message_id": created.id}
    with pytest.raises(anthropic.BadRequestError):  # refused before it runs: the reply stays free
        claude.beta.messages.create(model="claude-x", max_tokens=4, messages=more, thread=resume,
                                    tool_choice={"type": "tool", "name": "nope"})
    url, headers = server.base_url + "/v1/messages", {"anthropic-version": "2023-06-01"}
    with httpx.stream("POST", url, headers=headers, timeout=120, json={
            # Greedy (no early end of turn) and long enough that the second continue surely comes while it runs
            "model": "claude-x", "max_tokens": 400, "temperature": 0, "messages": more, "thread": resume,
            "stream": True}) as first:
        assert first.status_code == 200
        lines = first.iter_lines()
        head = [next(lines)]  # the turn is running
        with pytest.raises(anthropic.types.ThreadContinueInFlightError) as err:
            claude.beta.messages.create(model="claude-x", max_tokens=4, messages=more, thread=resume)
        assert err.value.body["error"]["details"] == {"error_code": "thread_continue_in_flight"}
        assert "thread.previous_message_id" in err.value.message
        events = [json.loads(line[5:]) for line in [*head, *lines] if line.startswith("data:")]
    assert events[-1]["type"] == "message_stop"
    second = events[0]["message"]["id"]
    with pytest.raises(anthropic.types.ThreadAlreadyContinuedError) as err:
        claude.beta.messages.create(model="claude-x", max_tokens=4, messages=more, thread=resume)
    assert err.value.status_code == 400 and err.value.body["error"]["type"] == "invalid_request_error"
    assert err.value.body["error"]["details"] == {"error_code": "thread_already_continued"}
    assert second in err.value.message  # names the reply to continue from
    assert err.value.body["error"]["message"].startswith("thread.previous_message_id: ")


PROMPTS = ["What's the weather in Paris?", "Time in UTC?", "Weather and time, please.", "hi", "Paris", "go",
           "Call a tool.", "UTC"]


@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "get_weather"}], ids=["any", "tool"])
def test_forced_call_cut_before_its_tag_completes_leaks_no_text(claude: anthropic.Anthropic, choice) -> None:
    """max_tokens 1-2 end a forced call inside its opening tag (this random model, greedy, often starts
    `<tool_call>` with `<` or `<tool`): no tag text becomes a text block, streamed or not."""
    for prompt, max_tokens in [(p, m) for p in PROMPTS for m in (1, 2)]:
        kwargs = dict(model="claude-x", max_tokens=max_tokens, messages=[{"role": "user", "content": prompt}],
                      tools=TOOLS, tool_choice=choice, extra_body={"temperature": 0})
        message = claude.messages.create(**kwargs)
        assert message.stop_reason == "max_tokens"
        assert [b.type for b in message.content if b.type == "text"] == [], (prompt, max_tokens, message.content)
        with claude.messages.stream(**kwargs) as stream:
            final = stream.get_final_message()
        assert [b for b in final.content if b.type == "text"] == [], (prompt, max_tokens, final.content)

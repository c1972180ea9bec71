"""vLLM's request extensions scripts send: min_tokens, return_token_ids, prompt_logprobs, allowed_token_ids,
logprob_token_ids, return_tokens_as_token_ids, truncate_prompt_tokens."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import MODEL_NAME, TERSE_MODEL_NAME

USER = [{"role": "user", "content": "Hello"}]


@pytest.fixture()
def terse(terse_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=terse_server.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_min_tokens_holds_off_the_end_of_turn(terse):
    """The terse model ends its turn after a few tokens; min_tokens keeps it going."""
    short = terse.chat.completions.create(model=TERSE_MODEL_NAME, messages=USER, max_tokens=40, temperature=0)
    assert short.choices[0].finish_reason == "stop" and short.usage.completion_tokens < 20, short.usage
    long = terse.chat.completions.create(model=TERSE_MODEL_NAME, messages=USER, max_tokens=40, temperature=0,
                                         extra_body={"min_tokens": 30})
    assert long.usage.completion_tokens >= 30
    text = terse.completions.create(model=TERSE_MODEL_NAME, prompt="Hi", max_tokens=30, temperature=0,
                                    extra_body={"min_tokens": 30})
    assert text.usage.completion_tokens == 30


@pytest.mark.parametrize("path", ["/chat/completions", "/completions"])
def test_min_tokens_above_max_tokens_is_400(client, path):
    body = {"model": MODEL_NAME, "max_tokens": 2, "min_tokens": 3}
    body.update({"messages": USER} if path == "/chat/completions" else {"prompt": "hi"})
    with pytest.raises(openai.BadRequestError) as err:
        client.post(path, body=body, cast_to=object)
    assert err.value.body["param"] == "min_tokens"


# -- return_token_ids -------------------------------------------------------------------------------------------


def _tokens(server, **body) -> list[int]:
    return httpx.post(server.base_url + "/tokenize", json=body).json()["tokens"]


def _text(server, ids: list[int]) -> str:
    return httpx.post(server.base_url + "/detokenize", json={"tokens": ids}).json()["prompt"]


def test_chat_returns_the_prompt_and_output_token_ids(server, client):
    kwargs = dict(model=MODEL_NAME, messages=USER, max_tokens=8, temperature=0,
                  extra_body={"return_token_ids": True, "ignore_eos": True})
    reply = client.chat.completions.create(**kwargs)
    assert reply.prompt_token_ids == _tokens(server, messages=USER)
    ids = reply.choices[0].token_ids
    assert len(ids) == reply.usage.completion_tokens == 8
    assert _text(server, ids) == reply.choices[0].message.content
    chunks = list(client.chat.completions.create(**kwargs, stream=True))
    assert chunks[0].prompt_token_ids == reply.prompt_token_ids
    assert all("prompt_token_ids" not in c.model_dump(exclude_unset=True) for c in chunks[1:])
    assert [t for c in chunks if c.choices for t in (c.choices[0].token_ids or [])] == ids
    plain = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=2)
    dumped = plain.model_dump(exclude_unset=True)
    assert "prompt_token_ids" not in dumped and "token_ids" not in dumped["choices"][0]


def test_completions_return_each_choices_token_ids(server, client):
    prompts = ["Hello there", [10, 11, 12]]
    kwargs = dict(model=MODEL_NAME, prompt=prompts, max_tokens=5, temperature=0,
                  extra_body={"return_token_ids": True, "ignore_eos": True})
    reply = client.completions.create(**kwargs)
    expected = [_tokens(server, prompt="Hello there"), [10, 11, 12]]
    assert [c.prompt_token_ids for c in reply.choices] == expected
    assert all(len(c.token_ids) == 5 and _text(server, c.token_ids) == c.text for c in reply.choices)
    streamed: dict[int, list[int]] = {0: [], 1: []}
    prompt_ids: dict[int, list[int]] = {}
    for chunk in client.completions.create(**kwargs, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] += choice.token_ids or []
            if getattr(choice, "prompt_token_ids", None) is not None:
                assert choice.index not in prompt_ids, "prompt ids come once, on the choice's first chunk"
                prompt_ids[choice.index] = choice.prompt_token_ids
    assert [prompt_ids[0], prompt_ids[1]] == expected
    assert [streamed[0], streamed[1]] == [c.token_ids for c in reply.choices]


# -- prompt_logprobs ---------------------------------------------------------------------------------------------


def _check_prompt_logprobs(entries, prompt_ids: list[int], top: int) -> None:
    assert entries[0] is None and len(entries) == len(prompt_ids)
    for position, token_id in zip(entries[1:], prompt_ids[1:]):
        assert str(token_id) in position
        assert top <= len(position) <= top + 1
        assert all(e["logprob"] <= 0.0 and e["rank"] >= 1 and isinstance(e["decoded_token"], str)
                   for e in position.values())


@pytest.mark.parametrize("top", [0, 2])
def test_chat_prompt_logprobs(server, client, top):
    reply = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=2,
                                           extra_body={"prompt_logprobs": top, "return_token_ids": True})
    _check_prompt_logprobs(reply.model_dump()["prompt_logprobs"], reply.prompt_token_ids, top)
    plain = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=2)
    assert plain.prompt_logprobs is None  # null when not asked for, as vLLM answers (its clients read it)


def test_completions_prompt_logprobs_null_when_not_asked(client):
    reply = client.completions.create(model=MODEL_NAME, prompt=["A robot may not", "My name is"], max_tokens=2)
    assert [choice.prompt_logprobs for choice in reply.choices] == [None, None]


def test_completions_prompt_logprobs_per_choice(client):
    reply = client.completions.create(model=MODEL_NAME, prompt=["A robot may not", "My name is"], max_tokens=2,
                                      extra_body={"prompt_logprobs": 1, "return_token_ids": True})
    for choice in reply.model_dump()["choices"]:
        _check_prompt_logprobs(choice["prompt_logprobs"], choice["prompt_token_ids"], 1)
        assert choice["logprobs"] is None  # (not echoed into the legacy logprobs)


@pytest.mark.parametrize("extra", [{"prompt_logprobs": -1}, {"prompt_logprobs": 21},
                                   {"prompt_logprobs": 1, "stream": True}])
def test_bad_prompt_logprobs_are_400(client, extra):
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/chat/completions", body={"model": MODEL_NAME, "messages": USER, "max_tokens": 2, **extra},
                    cast_to=object)
    assert err.value.body["param"] == "prompt_logprobs"


# -- stream_options.continuous_usage_stats -------------------------------------------------------------------


@pytest.mark.parametrize("route", ["chat", "completions"])
def test_continuous_usage_stats_put_the_usage_so_far_on_every_chunk(client, route):
    kwargs = dict(model=MODEL_NAME, max_tokens=6, stream=True, extra_body={"ignore_eos": True},
                  stream_options={"include_usage": True, "continuous_usage_stats": True})
    if route == "chat":
        chunks = list(client.chat.completions.create(messages=USER, **kwargs))
    else:
        chunks = list(client.completions.create(prompt="Hello", **kwargs))
    usages = [c.usage for c in chunks]
    assert all(u is not None for u in usages)
    counts = [u.completion_tokens for u in usages]
    assert counts == sorted(counts) and counts[-1] == 6
    assert len({u.prompt_tokens for u in usages}) == 1
    assert all(u.total_tokens == u.prompt_tokens + u.completion_tokens for u in usages)
    assert not any("token_ids" in c.model_dump(exclude_unset=True).get("choices", [{}])[0] for c in chunks if c.choices)


def test_continuous_usage_stats_count_only_the_tokens_sent(client):
    """The role's chunk comes before any text: it counts no completion token; each text chunk counts its own."""
    chunks = list(client.chat.completions.create(
        model=MODEL_NAME, messages=USER, max_tokens=6, stream=True, extra_body={"ignore_eos": True},
        stream_options={"include_usage": True, "continuous_usage_stats": True}))
    assert chunks[0].choices[0].delta.role == "assistant" and not chunks[0].choices[0].delta.content
    assert chunks[0].usage.completion_tokens == 0
    previous = 0
    for chunk in chunks[1:]:
        if chunk.choices and chunk.choices[0].delta.content:
            assert chunk.usage.completion_tokens > previous
        previous = chunk.usage.completion_tokens


# -- allowed_token_ids ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_allowed_token_ids_are_the_only_tokens_generated(client, stream):
    allowed = [42, 77, 300]
    common = dict(model=MODEL_NAME, max_tokens=12, temperature=1.0, seed=7,
                  extra_body={"allowed_token_ids": allowed, "return_token_ids": True, "ignore_eos": True})
    chat = client.chat.completions.create(messages=USER, stream=stream, **common)
    text = client.completions.create(prompt="Once upon a time", stream=stream, **common)
    for answer in (chat, text):
        if stream:
            ids = [t for c in answer if c.choices for t in (c.choices[0].token_ids or [])]
        else:
            ids = answer.choices[0].token_ids
        assert len(ids) == 12 and set(ids) <= set(allowed), ids
    free = client.completions.create(prompt="Once upon a time", **{**common, "extra_body": {"return_token_ids": True,
                                                                                             "ignore_eos": True}})
    assert not set(free.choices[0].token_ids) <= set(allowed)  # (the check above can fail)


@pytest.mark.parametrize(("allowed", "why"), [([], "at least one"), ([10**9], "outside the vocabulary"),
                                              ([-1], "allowed_token_ids")])
def test_bad_allowed_token_ids_are_400(client, allowed, why):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=2,
                                       extra_body={"allowed_token_ids": allowed})
    assert err.value.body["param"].startswith("allowed_token_ids") and why in err.value.body["message"]


def test_allowed_token_ids_give_way_to_a_grammar_they_share_no_token_with(client):
    """Within a constraint they narrow what it allows; where they share no token the constraint's choice stands
    (never an engine failure)."""
    reply = client.chat.completions.create(
        model=MODEL_NAME, messages=USER, max_tokens=30, temperature=0,
        extra_body={"allowed_token_ids": [42], "structured_outputs": {"choice": ["yes", "no"]}})
    assert reply.choices[0].message.content in ("yes", "no")


# -- logprob_token_ids, return_tokens_as_token_ids -------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_logprob_token_ids_name_the_alternatives_and_tokens_come_as_ids(client, stream):
    """As vLLM answers: the alternatives are the sampled token and the ones asked for (with or without
    `logprobs`), every entry named "token_id:<id>"; chat and completions alike."""
    extra = {"logprob_token_ids": [100, 200], "return_tokens_as_token_ids": True, "return_token_ids": True,
             "ignore_eos": True}
    text = client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=4, temperature=0, logprobs=5,
                                     stream=stream, extra_body=extra)
    chat = client.chat.completions.create(model=MODEL_NAME, messages=USER, max_tokens=4, temperature=0,
                                          stream=stream, extra_body=extra)  # (turns logprobs on by itself)
    if stream:
        text, chat = list(text), list(chat)
        text_ids = [t for c in text if c.choices for t in (c.choices[0].token_ids or [])]
        tokens = [t for c in text if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.tokens]
        tops = [d for c in text if c.choices and c.choices[0].logprobs for d in c.choices[0].logprobs.top_logprobs]
        chat_ids = [t for c in chat if c.choices for t in (c.choices[0].token_ids or [])]
        entries = [e for c in chat if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    else:
        text_ids, chat_ids = text.choices[0].token_ids, chat.choices[0].token_ids
        tokens, tops = text.choices[0].logprobs.tokens, text.choices[0].logprobs.top_logprobs
        entries = chat.choices[0].logprobs.content
    assert tokens == [f"token_id:{i}" for i in text_ids]
    assert [set(top) for top in tops] == [{f"token_id:{i}", "token_id:100", "token_id:200"} for i in text_ids]
    assert [e.token for e in entries] == [f"token_id:{i}" for i in chat_ids]
    assert [{t.token for t in e.top_logprobs} for e in entries] == \
        [{f"token_id:{i}", "token_id:100", "token_id:200"} for i in chat_ids]


def test_bad_logprob_token_ids_are_400(client):
    for ids, why in (([10**9], "outside the vocabulary"), (list(range(129)), "length")):
        with pytest.raises(openai.BadRequestError) as err:
            client.completions.create(model=MODEL_NAME, prompt="Hi", max_tokens=2,
                                      extra_body={"logprob_token_ids": ids})
        assert err.value.body["param"] == "logprob_token_ids" and why in err.value.body["message"]


# -- truncate_prompt_tokens, truncation_side ---------------------------------------------------------------------


def test_truncate_prompt_tokens_keeps_the_last_tokens_unless_the_side_is_right(client):
    """As vLLM: the last k of the prompt's tokens by default ("left" cuts from the start), the first k with
    "right"; a token-id prompt and a text prompt alike; a prompt already short enough is left as it is."""
    ids = list(range(100, 108))

    def sent(prompt, **extra) -> list[int]:
        reply = client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=1, temperature=0,
                                          extra_body={"return_token_ids": True, **extra})
        assert reply.usage.prompt_tokens == len(reply.choices[0].prompt_token_ids)
        return reply.choices[0].prompt_token_ids

    assert sent(ids, truncate_prompt_tokens=3) == ids[-3:]
    assert sent(ids, truncate_prompt_tokens=3, truncation_side="left") == ids[-3:]
    assert sent(ids, truncate_prompt_tokens=3, truncation_side="right") == ids[:3]
    assert sent(ids, truncate_prompt_tokens=50) == ids
    assert sent(ids, truncation_side="right") == ids  # the side alone changes nothing
    whole = sent("one two three four five six seven eight nine ten")
    assert sent("one two three four five six seven eight nine ten", truncate_prompt_tokens=4) == whole[-4:]


def test_truncate_prompt_tokens_cuts_a_chat_prompt_as_rendered(server, client):
    messages = [{"role": "system", "content": "You are terse. " * 20}, *USER]
    rendered = _tokens(server, messages=messages)
    reply = client.chat.completions.create(model=MODEL_NAME, messages=messages, max_tokens=1, temperature=0,
                                           extra_body={"return_token_ids": True, "truncate_prompt_tokens": 10})
    assert reply.prompt_token_ids == rendered[-10:] and reply.usage.prompt_tokens == 10


def test_truncate_prompt_tokens_minus_one_fits_an_overlong_prompt_into_the_window(client):
    """-1: as many as the window (4,096 here) allows with room for one token; without it, the same prompt is a
    400 for its length."""
    ids = [100 + i % 50 for i in range(5000)]
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL_NAME, prompt=ids, max_tokens=1)
    reply = client.completions.create(model=MODEL_NAME, prompt=ids, max_tokens=1, temperature=0,
                                      extra_body={"truncate_prompt_tokens": -1, "return_token_ids": True})
    assert reply.choices[0].prompt_token_ids == ids[-4095:] and reply.usage.completion_tokens == 1


def test_echo_shows_what_truncation_left_of_the_prompt(server, client):
    ids = list(range(100, 108))
    reply = client.completions.create(model=MODEL_NAME, prompt=ids, max_tokens=1, temperature=0, echo=True,
                                      extra_body={"truncate_prompt_tokens": 3})
    assert reply.choices[0].text.startswith(_text(server, ids[-3:]))


@pytest.mark.parametrize("path", ["/chat/completions", "/completions"])
@pytest.mark.parametrize("extra, why", [
    ({"truncate_prompt_tokens": 5000}, "cannot be greater than max_model_len = 4096"),
    ({"truncate_prompt_tokens": 0}, "leaves no prompt"),
    ({"truncate_prompt_tokens": -2}, ">= -1"),
    ({"truncate_prompt_tokens": 3, "truncation_side": "middle"}, "truncation_side"),
])
def test_bad_truncation_is_400(client, path, extra, why):
    body = {"model": MODEL_NAME, "max_tokens": 1, **extra}
    body.update({"messages": USER} if path == "/chat/completions" else {"prompt": "hi"})
    with pytest.raises(openai.BadRequestError) as err:
        client.post(path, body=body, cast_to=object)
    assert why in err.value.body["message"]
    assert err.value.body["param"] in ("truncate_prompt_tokens", "truncation_side")


def test_truncation_keeps_exactly_the_tokens_of_the_whole_prompt(server, client):
    """The last k of the tokens the whole text encodes to, even where cutting the text first would encode
    differently (a long run of one character is one pre-token, merged from its start)."""
    for text, keep in (("=" * 3000, 2), (" " * 2000 + "z", 3), ("word " * 600, 7)):
        whole = _tokens(server, prompt=text)
        reply = client.completions.create(model=MODEL_NAME, prompt=text, max_tokens=1, temperature=0,
                                          extra_body={"truncate_prompt_tokens": keep, "return_token_ids": True})
        assert reply.choices[0].prompt_token_ids == whole[-keep:]


def test_echo_of_a_prompt_truncation_did_not_cut_is_the_prompt_itself(client):
    reply = client.completions.create(model=MODEL_NAME, prompt="Hello world", max_tokens=1, echo=True,
                                      extra_body={"truncate_prompt_tokens": 100})
    assert reply.choices[0].text.startswith("Hello world")

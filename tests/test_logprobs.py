"""logprobs through the official OpenAI SDK: chat (`logprobs` + `top_logprobs`) and completions (`logprobs: N`),
streamed and not, against the tiny random model on the CPU engine."""

from __future__ import annotations

import math

import openai
import pytest

from tests.conftest import MODEL_NAME

PROMPT = [{"role": "user", "content": "Tell me about logprobs"}]


def chat(client: openai.OpenAI, **kwargs):
    return client.chat.completions.create(model=MODEL_NAME, messages=PROMPT, **kwargs)


def test_chat_logprobs_cover_every_token_and_spell_the_text(client):
    r = chat(client, max_tokens=12, temperature=0, logprobs=True, top_logprobs=3, extra_body={"ignore_eos": True})
    choice = r.choices[0]
    content = choice.logprobs.content
    assert len(content) == r.usage.completion_tokens == 12
    assert b"".join(bytes(e.bytes) for e in content).decode() == choice.message.content
    for e in content:
        assert e.logprob <= 0.0 and len(e.top_logprobs) == 3
        assert [t.logprob for t in e.top_logprobs] == sorted((t.logprob for t in e.top_logprobs), reverse=True)
        assert sum(math.exp(t.logprob) for t in e.top_logprobs) <= 1.0 + 1e-6
        # Greedy: the chosen token is the most likely one, and the same entry.
        assert (e.token, e.logprob, e.bytes) == (e.top_logprobs[0].token, e.top_logprobs[0].logprob,
                                                 e.top_logprobs[0].bytes)
        assert e.token == bytes(e.bytes).decode("utf-8", errors="replace")


def test_logprobs_are_of_the_distribution_after_temperature(client):
    def first(temperature: float):
        r = chat(client, max_tokens=1, temperature=temperature, seed=1, logprobs=True, top_logprobs=2)
        return r.choices[0].logprobs.content[0].top_logprobs

    cold, warm = first(0.5), first(1.5)
    assert cold[0].token == warm[0].token  # the same distribution, sharpened or flattened
    assert cold[0].logprob > warm[0].logprob
    assert cold[0].logprob - cold[1].logprob == pytest.approx(3 * (warm[0].logprob - warm[1].logprob), rel=1e-3)


def test_streamed_chat_logprobs_join_to_the_non_streamed_ones(client):
    kwargs = dict(max_tokens=10, temperature=0, logprobs=True, top_logprobs=2, extra_body={"ignore_eos": True})
    whole = chat(client, **kwargs).choices[0].logprobs.content
    streamed = []
    for chunk in chat(client, stream=True, **kwargs):
        if chunk.choices and chunk.choices[0].logprobs is not None:
            streamed.extend(chunk.choices[0].logprobs.content)
    # Tokens exactly; logprobs to float32 rounding: the second request reuses the first one's prompt from the
    # prefix cache, so its prefill runs over fewer rows, and a matmul's rounding depends on its shape (~1e-6).
    assert [(e.token, [t.token for t in e.top_logprobs]) for e in streamed] == \
        [(e.token, [t.token for t in e.top_logprobs]) for e in whole]
    assert [e.logprob for e in streamed] == pytest.approx([e.logprob for e in whole], abs=1e-4)


def test_no_logprobs_unless_asked(client):
    assert chat(client, max_tokens=3).choices[0].logprobs is None
    r = chat(client, max_tokens=3, logprobs=True)  # no top_logprobs: the chosen tokens only
    assert len(r.choices[0].logprobs.content) == r.usage.completion_tokens
    assert all(e.top_logprobs == [] for e in r.choices[0].logprobs.content)


def test_logprobs_with_a_tool_call_cover_the_call_tokens_too(client):
    tool = {"type": "function", "function": {"name": "pick", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["n"]}}}
    r = chat(client, max_tokens=60, tools=[tool], tool_choice="required", parallel_tool_calls=False, logprobs=True,
             seed=0)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls[0].function.name == "pick"
    assert len(choice.logprobs.content) == r.usage.completion_tokens
    # Under the grammar every chosen token was allowed: none sits at the floor reported for forbidden ones.
    assert all(e.logprob > -9999.0 for e in choice.logprobs.content)


def test_completions_logprobs_legacy_shape(client):
    kwargs = dict(model=MODEL_NAME, prompt="The quick brown", max_tokens=8, temperature=0, logprobs=2,
                  extra_body={"ignore_eos": True})
    r = client.completions.create(**kwargs)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 8
    assert "".join(lp.tokens) == r.choices[0].text
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(8)]
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 2 and max(top.values()) == logprob and top[token] == logprob  # greedy: the best
    streamed = [c.choices[0].logprobs for c in client.completions.create(stream=True, **kwargs)
                if c.choices and c.choices[0].logprobs is not None]
    assert [t for part in streamed for t in part.tokens] == lp.tokens
    assert [o for part in streamed for o in part.text_offset] == lp.text_offset
    assert [v for part in streamed for v in part.token_logprobs] == lp.token_logprobs


def test_completions_logprobs_zero_names_the_chosen_token(client):
    r = client.completions.create(model=MODEL_NAME, prompt="Hello", max_tokens=3, logprobs=0, seed=3)
    lp = r.choices[0].logprobs
    assert [list(top) for top in lp.top_logprobs] == [[t] for t in lp.tokens]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/chat/completions", {"logprobs": 3}, "logprobs"),
        ("/chat/completions", {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ("/chat/completions", {"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
        ("/chat/completions", {"top_logprobs": 2}, "top_logprobs"),
        ("/completions", {"logprobs": 21}, "logprobs"),
        ("/completions", {"logprobs": True}, "logprobs"),
        ("/completions", {"logprobs": "2"}, "logprobs"),
    ],
)
def test_bad_logprobs_requests_are_400_naming_the_param(client, path, body, param):
    base = {"messages": PROMPT} if path == "/chat/completions" else {"prompt": "hi"}
    with pytest.raises(openai.BadRequestError) as err:
        client.post(path, body={"model": MODEL_NAME, "max_tokens": 2, **base, **body}, cast_to=object)
    assert err.value.body["param"] == param and err.value.body["type"] == "invalid_request_error"


# -- logit_bias (it shapes the same distribution the logprobs describe) ------------------------------------


def test_logit_bias_forces_and_forbids_tokens(client, tiny_model_dir):
    import xgrammar as xgr
    from transformers import AutoTokenizer

    vocab = xgr.TokenizerInfo.from_huggingface(AutoTokenizer.from_pretrained(str(tiny_model_dir))).decoded_vocab
    greedy = chat(client, max_tokens=1, temperature=0, logprobs=True).choices[0].logprobs.content[0]
    greedy_id = vocab.index(bytes(greedy.bytes))
    # -100 on the greedy first token: another token comes first.
    other = chat(client, max_tokens=1, temperature=0, logprobs=True, logit_bias={str(greedy_id): -100})
    assert other.choices[0].logprobs.content[0].bytes != greedy.bytes
    # +100 on one token: at temperature 1 it is every token, with a logprob of about 0.
    forced = chat(client, max_tokens=5, seed=0, logprobs=True, logit_bias={"300": 100},
                  extra_body={"ignore_eos": True})
    tokens = forced.choices[0].logprobs.content
    assert {bytes(t.bytes) for t in tokens} == {vocab[300]} and all(t.logprob > -1e-3 for t in tokens)


@pytest.mark.parametrize("bias", [{"abc": 1}, {"5": 101}, {"5": -100.5}, {"99999999": 1}, {"²": 1}, {"1" * 5000: 1}])
def test_bad_logit_bias_is_400(client, bias):
    with pytest.raises(openai.BadRequestError) as err:
        chat(client, max_tokens=2, logit_bias=bias)
    assert err.value.body["param"] == "logit_bias"


# -- echo: scoring a prompt (what lm-evaluation-harness's loglikelihood asks of a completions server) --------


def test_echo_scores_the_prompt_without_generating(client):
    r = client.completions.create(model=MODEL_NAME, prompt="The quick brown fox", max_tokens=0, echo=True,
                                  logprobs=2)
    choice = r.choices[0]
    lp = choice.logprobs
    assert choice.text == "The quick brown fox" and "".join(lp.tokens) == choice.text
    assert r.usage.completion_tokens == 0 and len(lp.tokens) == r.usage.prompt_tokens
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert all(v < 0 for v in lp.token_logprobs[1:]) and all(len(t) == 2 for t in lp.top_logprobs[1:])
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]


def test_prompt_logprobs_are_the_models_own(client, tiny_model_dir):
    """Each prompt token's logprob is log_softmax of the model's logits one position earlier: checked against
    transformers running the same weights (a prompt longer than a 256-token prefill chunk, so chunk seams count)."""
    import torch
    from transformers import AutoModelForCausalLM

    prompt = [(7 * i + 3) % 4000 + 20 for i in range(300)]
    scored = client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=0, echo=True,
                                       logprobs=0).choices[0].logprobs
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).eval()
    with torch.no_grad():
        reference = torch.log_softmax(model(torch.tensor([prompt])).logits[0].float(), dim=-1)
    expected = [float(reference[i - 1, prompt[i]]) for i in range(1, len(prompt))]
    assert scored.token_logprobs[0] is None
    assert scored.token_logprobs[1:] == pytest.approx(expected, abs=1e-3)


def test_echo_streams_the_prompt_first_and_joins_like_the_whole(client):
    kwargs = dict(model=MODEL_NAME, prompt=[10, 20, 30, 40], max_tokens=3, temperature=0, echo=True, logprobs=1,
                  extra_body={"ignore_eos": True})
    whole = client.completions.create(**kwargs).choices[0]
    chunks = [c.choices[0] for c in client.completions.create(stream=True, **kwargs) if c.choices]
    assert "".join(c.text for c in chunks) == whole.text
    parts = [c.logprobs for c in chunks if c.logprobs is not None]
    assert parts[0].token_logprobs[0] is None and len(parts[0].tokens) == 4  # the prompt, with the echo
    assert [t for p in parts for t in p.tokens] == whole.logprobs.tokens
    assert [o for p in parts for o in p.text_offset] == whole.logprobs.text_offset


def test_echo_without_logprobs_and_max_tokens_zero_without_echo(client):
    r = client.completions.create(model=MODEL_NAME, prompt="hello there", max_tokens=2, echo=True)
    assert r.choices[0].text.startswith("hello there") and r.choices[0].logprobs is None
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=MODEL_NAME, prompt="hello", max_tokens=0)
    assert err.value.body["param"] == "max_tokens"


# -- vLLM's stop_token_ids and skip_special_tokens extensions ---------------------------------------------------


def test_stop_token_ids_end_the_output(client, tiny_model_dir):
    import xgrammar as xgr
    from transformers import AutoTokenizer

    vocab = xgr.TokenizerInfo.from_huggingface(AutoTokenizer.from_pretrained(str(tiny_model_dir))).decoded_vocab
    greedy = chat(client, max_tokens=6, temperature=0, logprobs=True, extra_body={"ignore_eos": True})
    third = vocab.index(bytes(greedy.choices[0].logprobs.content[2].bytes))
    stopped = chat(client, max_tokens=6, temperature=0, extra_body={"ignore_eos": True, "stop_token_ids": [third]})
    assert stopped.choices[0].finish_reason == "stop" and stopped.usage.completion_tokens <= 3
    assert greedy.choices[0].message.content.startswith(stopped.choices[0].message.content)


def test_skip_special_tokens_false_keeps_them(client):
    # <|im_start|> (id 1 in tests/tiny_model.py: a special token that is not an end-of-turn) forced by logit_bias:
    # left out of the text by default, kept when asked.
    kwargs = dict(max_tokens=1, logprobs=True, logit_bias={"1": 100})
    hidden = chat(client, **kwargs)
    assert bytes(hidden.choices[0].logprobs.content[0].bytes) == b"<|im_start|>"
    assert hidden.choices[0].message.content == ""
    kept = chat(client, **kwargs, extra_body={"skip_special_tokens": False})
    assert kept.choices[0].message.content == "<|im_start|>"


def test_stop_token_ids_outside_the_vocabulary_are_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        chat(client, max_tokens=2, extra_body={"stop_token_ids": [99999999]})
    assert err.value.body["param"] == "stop_token_ids"


def test_a_prompt_may_fill_the_window_when_only_scored(client):
    # The test server's window is 4096 tokens: scoring needs no room for output, generating does.
    prompt = [(11 * i) % 4000 + 20 for i in range(4096)]
    r = client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=0, echo=True, logprobs=0)
    assert len(r.choices[0].logprobs.tokens) == 4096 and r.usage.completion_tokens == 0
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=1, echo=True, logprobs=0)
    assert err.value.body["code"] == "context_length_exceeded"

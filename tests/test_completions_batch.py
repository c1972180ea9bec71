"""Batch prompts on /v1/completions, as OpenAI and vLLM take them: a list of strings or of token-id lists,
answered with choices indexed prompt-major (prompt i's j-th choice is i * n + j), streamed the same way, with
usage counting each prompt once."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import MODEL_NAME

PROMPTS = ["def fib(n):", "The capital of France is"]
FIXED = {"ignore_eos": True}


def one(client: openai.OpenAI, prompt, **kwargs):
    return client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=5, extra_body=FIXED, **kwargs)


@pytest.mark.parametrize("prompts", [PROMPTS, [[10, 11, 12], [20, 21, 22, 23]]], ids=["text", "token_ids"])
def test_each_prompt_gets_its_own_choices_prompt_major(client, prompts):
    singles = [one(client, p, seed=7, n=2) for p in prompts]
    batch = one(client, prompts, seed=7, n=2)
    assert [c.index for c in batch.choices] == [0, 1, 2, 3]
    assert [c.text for c in batch.choices] == [c.text for s in singles for c in s.choices]
    assert batch.usage.prompt_tokens == sum(s.usage.prompt_tokens for s in singles)
    assert batch.usage.completion_tokens == 4 * 5
    assert batch.usage.total_tokens == batch.usage.prompt_tokens + 20


def test_same_prompt_twice_at_temperature_zero_gives_the_same_text(client):
    batch = one(client, [PROMPTS[0]] * 2, temperature=0)
    assert len(batch.choices) == 2 and batch.choices[0].text == batch.choices[1].text


def test_streamed_batch_joins_to_the_non_streamed_one(client):
    whole = one(client, PROMPTS, seed=3, n=2)
    texts, finishes, usage = ["", "", "", ""], {}, None
    for chunk in one(client, PROMPTS, seed=3, n=2, stream=True, stream_options={"include_usage": True}):
        for choice in chunk.choices:
            texts[choice.index] += choice.text
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
        usage = chunk.usage or usage
    assert texts == [c.text for c in whole.choices]
    assert finishes == {0: "length", 1: "length", 2: "length", 3: "length"}
    assert (usage.prompt_tokens, usage.completion_tokens) == (whole.usage.prompt_tokens, 20)


def test_echo_puts_each_prompt_before_its_choices(client):
    batch = one(client, PROMPTS, echo=True, n=2)
    for i, choice in enumerate(batch.choices):
        assert choice.text.startswith(PROMPTS[i // 2])


@pytest.mark.parametrize(("prompt", "param"), [([], "prompt"), ([[]], "prompt[0]"), (["a", 1], "prompt[1]"),
                                               (["a", ""], "prompt[1]"), ([[1, -2]], "prompt[0]"),
                                               (["a"] * 65, "prompt")])
def test_bad_batches_are_400_naming_the_prompt(client, prompt, param):
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/completions", body={"model": MODEL_NAME, "prompt": prompt, "max_tokens": 2}, cast_to=object)
    assert err.value.body["param"] == param

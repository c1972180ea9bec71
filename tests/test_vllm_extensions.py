"""vLLM's request extensions scripts send: min_tokens, return_token_ids, prompt_logprobs."""

from __future__ import annotations

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

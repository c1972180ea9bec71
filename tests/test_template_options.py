"""vLLM's and SGLang's chat template controls: add_generation_prompt, continue_final_message and
chat_template_kwargs, on chat completions and /tokenize."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import openai
import pytest
from transformers import AutoTokenizer

from runtime.templating import ChatTemplate
from runtime.types import TemplateOptions
from tests.conftest import MODEL_NAME

PARTIAL = [{"role": "user", "content": "Write a haiku."}, {"role": "assistant", "content": "Autumn moon, and"}]


def tokenize(server, **body) -> list[int]:
    r = httpx.post(server.base_url + "/tokenize", json={"messages": PARTIAL, **body})
    assert r.status_code == 200, r.text
    return r.json()["tokens"]


def detokenize(server, ids: list[int]) -> str:
    return httpx.post(server.base_url + "/detokenize", json={"tokens": ids}).json()["prompt"]


def test_continue_final_message_leaves_the_assistant_turn_open(server, client):
    ids = tokenize(server, continue_final_message=True)
    assert detokenize(server, ids).endswith("Autumn moon, and")
    closed = tokenize(server, add_generation_prompt=False)
    assert detokenize(server, closed).rstrip().endswith("<|im_end|>")
    reply = client.chat.completions.create(model=MODEL_NAME, messages=PARTIAL, max_tokens=3,
                                           extra_body={"continue_final_message": True})
    assert reply.usage.prompt_tokens == len(ids)


def test_add_generation_prompt_false_renders_no_assistant_turn(server, client):
    reply = client.chat.completions.create(model=MODEL_NAME, messages=PARTIAL[:1], max_tokens=3,
                                           extra_body={"add_generation_prompt": False})
    with_prompt = client.chat.completions.create(model=MODEL_NAME, messages=PARTIAL[:1], max_tokens=3)
    assert reply.usage.prompt_tokens < with_prompt.usage.prompt_tokens


@pytest.mark.parametrize(("extra", "param"), [
    ({"continue_final_message": True, "add_generation_prompt": True}, "add_generation_prompt"),
    ({"chat_template_kwargs": {"messages": []}}, "chat_template_kwargs.messages"),
    ({"chat_template_kwargs": {"add_generation_prompt": True}}, "chat_template_kwargs.add_generation_prompt"),
])
def test_contradictory_template_options_are_400(client, extra, param):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL_NAME, messages=PARTIAL, max_tokens=2, extra_body=extra)
    assert err.value.body["param"] == param


def test_chat_template_kwargs_are_accepted(client):
    reply = client.chat.completions.create(model=MODEL_NAME, messages=PARTIAL[:1], max_tokens=2,
                                           extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    assert reply.choices[0].finish_reason in ("stop", "length")


def test_chat_template_kwargs_reach_the_template(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    tokenizer.chat_template = ("{% if enable_thinking is defined and not enable_thinking %}NOTHINK {% endif %}"
                               "{% for m in messages %}{{ m.content }}{% endfor %}")
    template = ChatTemplate(SimpleNamespace(tokenizer=tokenizer, path=tiny_model_dir))
    messages = [{"role": "user", "content": "hi"}]
    plain = tokenizer.decode(template.render(messages, None, TemplateOptions()))
    off = tokenizer.decode(template.render(messages, None, TemplateOptions(kwargs={"enable_thinking": False})))
    assert (plain, off) == ("hi", "NOTHINK hi")

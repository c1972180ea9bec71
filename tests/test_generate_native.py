"""SGLang's native POST /generate, as scripts written against an SGLang server call it (plain requests)."""

from __future__ import annotations

import json
import re

import httpx
import pytest

FIXED = {"max_new_tokens": 6, "temperature": 0, "ignore_eos": True}


def generate(server, **body) -> httpx.Response:
    return httpx.post(server.base_url + "/generate", json=body, timeout=120)


def test_text_in_text_and_ids_out(server):
    r = generate(server, text="The capital of France is", sampling_params=FIXED)
    assert r.status_code == 200, r.text
    out = r.json()
    assert isinstance(out["text"], str) and len(out["output_ids"]) == 6
    meta = out["meta_info"]
    assert meta["finish_reason"] == {"type": "length", "length": 6}
    assert meta["completion_tokens"] == 6 and meta["prompt_tokens"] > 0 and meta["id"]
    detok = httpx.post(server.base_url + "/detokenize", json={"tokens": out["output_ids"]}).json()["prompt"]
    assert detok == out["text"]


def test_default_max_new_tokens_is_sglangs_128(server):
    out = generate(server, text="Hi", sampling_params={"ignore_eos": True}).json()
    assert out["meta_info"]["completion_tokens"] == 128


def test_batches_and_n_answer_lists(server):
    texts = ["Hello", "def f():"]
    batch = generate(server, text=texts, sampling_params=FIXED).json()
    singles = [generate(server, text=t, sampling_params=FIXED).json()["text"] for t in texts]
    assert [o["text"] for o in batch] == singles
    ids = generate(server, input_ids=[[10, 11], [12, 13, 14]], sampling_params=FIXED).json()
    assert [o["meta_info"]["prompt_tokens"] for o in ids] == [2, 3]
    n = generate(server, text="Hello", sampling_params={**FIXED, "temperature": 1.0, "n": 3, "sampling_seed": 1})
    assert len(n.json()) == 3


def test_stream_sends_the_whole_text_so_far(server):
    whole = generate(server, text="Once upon a time", sampling_params=FIXED).json()
    with httpx.stream("POST", server.base_url + "/generate", timeout=120,
                      json={"text": "Once upon a time", "sampling_params": FIXED, "stream": True}) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    texts = [c["text"] for c in chunks]
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:]))
    assert texts[-1] == whole["text"] and chunks[-1]["output_ids"] == whole["output_ids"]
    assert chunks[-1]["meta_info"]["finish_reason"]["type"] == "length"
    assert all(c["meta_info"]["finish_reason"] is None for c in chunks[:-1])


def test_constraints_in_sampling_params(server):
    out = generate(server, text="IP:", sampling_params={"regex": r"\d{1,3}(\.\d{1,3}){3}", "max_new_tokens": 40})
    assert re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", out.json()["text"])
    out = generate(server, text="Pick:", sampling_params={"ebnf": 'root ::= "yes" | "no"', "max_new_tokens": 10})
    assert out.json()["text"] in ("yes", "no")


@pytest.mark.parametrize(("body", "param"), [
    ({"text": "a", "input_ids": [1]}, "text"),
    ({}, "text"),
    ({"input_ids": [[1], []]}, "input_ids[1]"),
    ({"text": "a", "sampling_params": {"regex": "a", "ebnf": 'root ::= "a"'}}, "sampling_params.ebnf"),
    ({"text": "a", "sampling_params": {"regex": "[a"}}, "sampling_params.regex"),
    ({"text": "a", "sampling_params": {"temperature": 5}}, "sampling_params.temperature"),
    ({"text": "a", "sampling_params": {"min_new_tokens": 9, "max_new_tokens": 2}}, "sampling_params.min_new_tokens"),
    # output i uses sampling_seed + i, which SGLang keeps in an int64
    ({"text": "a", "sampling_params": {"sampling_seed": 2**63 - 1, "n": 2}}, "sampling_params.sampling_seed"),
    ({"text": "a", "sampling_params": {"stop": ["x"] * 257}}, "sampling_params.stop"),
])
def test_bad_requests_are_400_naming_the_field(server, body, param):
    r = generate(server, **body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param

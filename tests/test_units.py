"""Unit tests for the neutral core: detokenization, stop strings, sampling, budgets, settings, decoding."""

from __future__ import annotations

import json
from typing import Annotated

import msgspec
import pytest
import torch
from transformers import AutoTokenizer

from app.decoding import decode, error_param
from app.settings import Settings, load_settings
from runtime.detokenize import IncrementalDetokenizer
from runtime.engines.cpu.sampler import apply_penalties, log_distribution, sample
from runtime.errors import EngineFailure, InvalidRequest
from runtime.stops import StopMatcher
from runtime.tools.base import JsonStringEscaper
from runtime.tools.schemas import relax
from runtime.types import SamplingParams


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


TEXTS = ["北京今天天气怎么样？", "emoji 🚀🎉 mixed 中文 and ascii", "déjà vu — naïve café", "plain ascii text\n\twith tabs"]


@pytest.mark.parametrize("text", TEXTS)
def test_incremental_detokenization_never_splits_characters(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) > len(text) // 4  # the tiny vocabulary really splits these into byte pieces
    detok = IncrementalDetokenizer(tokenizer)
    pieces = [detok.push(i) for i in ids] + [detok.flush()]
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == tokenizer.decode(ids) == text


def test_detokenizer_flush_releases_a_truncated_character(tokenizer):
    ids = tokenizer.encode("北", add_special_tokens=False)
    detok = IncrementalDetokenizer(tokenizer)
    held = [detok.push(i) for i in ids[:-1]]
    assert "".join(held) == ""
    assert detok.flush() != ""  # what there is, as the replacement character, rather than nothing


def feed(matcher: StopMatcher, chunks: list[str]):
    out = []
    for c in chunks:
        r = matcher.push(c)
        out.append(r.text)
        if r.matched:
            return "".join(out), r.matched
    return "".join(out) + matcher.flush(), None


@pytest.mark.parametrize("chunks", [["Hello ST", "OP there"], ["Hello S", "T", "O", "P"], ["Hello STOP"]])
def test_stop_string_split_across_chunks(chunks):
    assert feed(StopMatcher(("STOP",)), chunks) == ("Hello ", "STOP")


def test_stop_partial_match_is_released_when_it_is_not_a_stop():
    assert feed(StopMatcher(("STOP",)), ["a ST", "ART b"]) == ("a START b", None)
    assert feed(StopMatcher(("END", "ST")), ["xxEN", "D ST"]) == ("xx", "END")
    assert feed(StopMatcher(()), ["abc"]) == ("abc", None)


def _held_back_by_scanning(buffer: str, stops: tuple[str, ...]) -> int:
    """What the matcher must hold back, by definition: the longest suffix that is a proper prefix of a stop."""
    return max((n for stop in stops for n in range(1, min(len(stop) - 1, len(buffer)) + 1)
                if buffer.endswith(stop[:n])), default=0)


def test_stop_matching_equals_the_definition_over_random_streams():
    """The matcher carries each stop string's KMP state between pushes; this checks it against finding every
    stop in the whole text and holding back by scanning, over 20,000 random streams of short chunks."""
    import random

    rng = random.Random(7)
    for _ in range(20_000):
        stops = tuple("".join(rng.choice("ab") for _ in range(rng.randint(1, 5))) for _ in range(rng.randint(1, 3)))
        matcher, emitted, seen = StopMatcher(stops), "", ""
        for _ in range(rng.randint(1, 8)):
            chunk = "".join(rng.choice("abc") for _ in range(rng.randint(0, 4)))
            seen += chunk
            result = matcher.push(chunk)
            emitted += result.text
            found = [(seen.find(stop), i) for i, stop in enumerate(stops) if stop in seen]
            if found:  # the earliest, and of those starting there the first listed
                at, i = min(found)
                stop = stops[i]
                assert (emitted, result.matched) == (seen[:at], stop), (stops, seen)
                break
            assert result.matched is None and emitted == seen[:len(seen) - _held_back_by_scanning(seen, stops)]


def test_sampling_is_seeded_and_filters():
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    params = SamplingParams(temperature=1.0, top_k=5)
    draw = lambda seed: [sample(logits.clone(), params, torch.Generator().manual_seed(seed)) for _ in range(20)]
    assert draw(1) == draw(1)
    top5 = set(torch.topk(logits, 5).indices.tolist())
    assert set(draw(2)) <= top5
    nucleus = SamplingParams(temperature=1.0, top_p=1e-6)
    assert sample(logits.clone(), nucleus, torch.Generator()) == int(torch.argmax(logits))
    assert sample(logits.clone(), SamplingParams(temperature=0.0), torch.Generator()) == int(torch.argmax(logits))


def test_sampling_respects_masked_tokens():
    logits = torch.zeros(10)
    logits[:9] = float("-inf")
    for seed in range(5):
        assert sample(logits.clone(), SamplingParams(temperature=1.5, top_p=0.9), torch.Generator().manual_seed(seed)) == 9


def test_penalties():
    logits = torch.zeros(5)
    generated = torch.tensor([1, 1, 2])
    out = apply_penalties(logits, generated, SamplingParams(frequency_penalty=0.5, presence_penalty=1.0))
    assert out.tolist() == [0.0, -2.0, -1.5, 0.0, 0.0]
    out = apply_penalties(torch.tensor([2.0, -2.0, 1.0]), torch.tensor([0, 1]), SamplingParams(repetition_penalty=2.0))
    assert out.tolist() == [1.0, -4.0, 1.0]


@pytest.mark.parametrize("split", range(1, 12))
def test_json_string_escaper_is_split_invariant(split):
    raw = '{"a": "x\x19y\\"\x01", "b": 1}'
    esc = JsonStringEscaper()
    joined = esc(raw[:split]) + esc(raw[split:])
    assert json.loads(joined) == {"a": 'x\x19y"\x01', "b": 1}


def test_relax_removes_only_unenforced_keywords():
    schema = {"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 2, "minimum": 0},
                                               "xs": {"type": "array", "uniqueItems": True, "items": {"not": {}}}},
              "if": {}, "then": {}, "required": ["n"]}
    relaxed, removed = relax(schema)
    assert removed == ["if", "multipleOf", "not", "then", "uniqueItems"]
    assert relaxed == {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0},
                                                        "xs": {"type": "array", "items": {}}}, "required": ["n"]}


def test_settings_from_flags_over_env():
    s = load_settings(["--port", "9001", "--model-aliases", "a,b"],
                      {"INFER_PORT": "7000", "INFER_API_KEYS": "k1,k2", "INFER_DISABLE_RADIX_CACHE": "true"})
    assert s.port == 9001 and s.model_aliases == ("a", "b") and s.api_keys == ("k1", "k2")
    assert s.disable_radix_cache is True
    assert "k1" not in repr(s) and "<2 keys>" in repr(s)
    assert Settings(model="/models/Qwen2.5-Coder-32B-Instruct/").model_name == "Qwen2.5-Coder-32B-Instruct"


@pytest.mark.parametrize(("argv", "environ", "said"), [
    (["--threads", "abc"], {}, "--threads must be an integer, not 'abc'"),
    ([], {"INFER_KV_CACHE_MB": "1.5"}, "INFER_KV_CACHE_MB must be an integer, not '1.5'"),
    (["--grammar-timeout", "soon"], {}, "--grammar-timeout must be a number, not 'soon'"),
])
def test_a_flag_of_the_wrong_type_is_a_usage_error_naming_it(argv, environ, said, capsys):
    with pytest.raises(SystemExit):
        load_settings(argv, environ)
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


@pytest.mark.parametrize(("message", "param"), [
    ("Expected `float` <= 2.0 - at `$.temperature`", "temperature"),
    ("Invalid value 'bob' - at `$.messages[0].role`", "messages[0].role"),
    ("Object missing required field `model`", "model"),
    ("Object missing required field `name` - at `$.tools[0].function`", "tools[0].function.name"),
])
def test_error_param_from_msgspec_messages(message, param):
    assert error_param(message) == param


class _BoundedBody(msgspec.Struct):
    seed: Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] = 0
    name: Annotated[str, msgspec.Meta(min_length=1)] = "x"
    even: Annotated[int, msgspec.Meta(multiple_of=2)] = 0


@pytest.mark.parametrize(("body", "kind"), [
    (b'{"seed": 9223372036854775808}', "less_than_equal"),
    (b'{"seed": -9223372036854775809}', "greater_than_equal"),
    (b'{"name": ""}', "string_too_short"),
    (b'{"even": 3}', "multiple_of"),
    (b'{"seed": 1, "name": "ok"}', None),
])
def test_a_broken_bound_is_named_as_pydantic_names_it(body, kind):
    """vLLM's 400s carry pydantic's error type (test_long_seed in its suite looks for it); ours add it too."""
    decoder = msgspec.json.Decoder(_BoundedBody)
    if kind is None:
        assert decode(decoder, body).name == "ok"
        return
    with pytest.raises(InvalidRequest) as raised:
        decode(decoder, body)
    assert raised.value.message.endswith(f"[type={kind}]")
    assert raised.value.param in ("seed", "name", "even")


def test_costly_string_bounds_are_relaxed_unless_strict():
    schema = {"type": "object", "properties": {"short": {"type": "string", "maxLength": 20},
                                               "long": {"type": "string", "minLength": 40, "maxLength": 200}}}
    relaxed, removed = relax(schema)
    assert removed == []
    assert relaxed["properties"] == {"short": {"type": "string", "maxLength": 20}, "long": {"type": "string"}}
    assert relax(schema, strict=True) == (schema, [])


def test_utf8_guard_allows_only_valid_continuations(tokenizer):
    import xgrammar as xgr

    from runtime.engines.cpu.utf8 import Utf8Guard

    vocab = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=len(tokenizer)).decoded_vocab
    guard = Utf8Guard(vocab, len(vocab), (2,))
    by_bytes = {data: i for i, data in enumerate(vocab)}
    at_boundary = guard.forbidden(b"")
    assert at_boundary[by_bytes[b"\xc0"]] and at_boundary[by_bytes[b"\x80"]]  # never valid / stray continuation
    assert not at_boundary[by_bytes[b"\xe4"]] and not at_boundary[by_bytes[b"a"]]
    pending = guard.advance(b"", by_bytes[b"\xe4"])
    assert pending == b"\xe4"
    after_lead = guard.forbidden(pending)
    assert not after_lead[by_bytes[b"\xb8"]] and after_lead[by_bytes[b"a"]] and not after_lead[2]
    assert guard.advance(guard.advance(pending, by_bytes[b"\xb8"]), by_bytes[b"\xad"]) == b""  # 中 complete
    assert guard.forbidden(b"\xed")[by_bytes[b"\xa0"]]  # a surrogate half is not UTF-8


def test_costly_patterns_are_relaxed_and_huge_bounds_refused_even_when_strict():
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^[a-z]{1,500}$"},
                                               "b": {"type": "string", "pattern": "^[a-z]{3}$"}}}
    relaxed, removed = relax(schema)
    assert relaxed["properties"] == {"a": {"type": "string"}, "b": {"type": "string", "pattern": "^[a-z]{3}$"}}
    assert removed == []
    huge = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 100000}}}
    assert relax(huge, strict=True)[1] == ["maxLength above 4096"]


def test_tools_inlined_for_templates_without_tool_support():
    from runtime.tools.hermes import HermesFormat
    from runtime.tools.plan import plan_chat
    from runtime.types import ChatRequest, Message, Tool, ToolCall

    request = ChatRequest(
        messages=(Message("system", "Be brief."), Message("user", "weather?"),
                  Message("assistant", "", tool_calls=(ToolCall("call_1", "get_weather", {"city": "Paris"}),
                                                       ToolCall("call_2", "get_weather", {"city": "Rome"}))),
                  Message("tool", "sunny", tool_call_id="call_1"), Message("tool", "rainy", tool_call_id="call_2")),
        tools=(Tool("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}),),
    )
    plan = plan_chat(request, HermesFormat(), template_renders_tools=False)
    assert plan.tools is None
    roles = [m["role"] for m in plan.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert plan.messages[0]["content"].startswith("Be brief.\n\n# Tools") and '"get_weather"' in plan.messages[0]["content"]
    assert plan.messages[2]["content"] == (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>')
    assert plan.messages[3]["content"] == "<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrainy\n</tool_response>"


@pytest.mark.parametrize(
    ("config", "window"),
    [
        ({"max_position_embeddings": 32768}, 32768),
        # Qwen2.5's documented YaRN block names the original length: SGLang keeps 32768, and so do we.
        ({"max_position_embeddings": 32768,
          "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"}}, 32768),
        ({"max_position_embeddings": 4096, "rope_scaling": {"factor": 2.0, "type": "linear"}}, 8192),
        ({"max_position_embeddings": 8192, "rope_scaling": {"factor": 8.0, "rope_type": "llama3",
                                                            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                            "original_max_position_embeddings": 8192}}, 8192),
    ],
)
def test_context_window_as_sglang_computes_it(config, window):
    from transformers import Qwen2Config

    from runtime.model import _context_window

    assert _context_window(Qwen2Config(**config)) == window


def test_context_window_key_preference_and_gpt2():
    from types import SimpleNamespace

    from runtime.model import _context_window

    assert _context_window(SimpleNamespace(seq_length=2048, max_position_embeddings=4096)) == 2048
    assert _context_window(SimpleNamespace(n_positions=1024)) == 1024
    assert _context_window(SimpleNamespace()) is None


def test_non_finite_logits_never_reach_multinomial(monkeypatch):
    drawn: list[torch.Tensor] = []
    real = torch.multinomial
    monkeypatch.setattr(torch, "multinomial", lambda probs, *a, **k: drawn.append(probs) or real(probs, *a, **k))
    nan_row = torch.tensor([float("nan"), 1.0, float("nan"), 0.5])
    inf_row = torch.tensor([float("inf"), float("inf"), 0.0, float("-inf")])
    for seed in range(5):
        for params in (SamplingParams(), SamplingParams(temperature=1e-5, top_p=0.5, min_p=0.1)):
            assert sample(nan_row.clone(), params, torch.Generator().manual_seed(seed)) in (1, 3)
            assert sample(inf_row.clone(), params, torch.Generator().manual_seed(seed)) in (0, 1)
        assert sample(nan_row.clone(), SamplingParams(temperature=0.0), torch.Generator()) == 1
    assert drawn and all(bool(torch.isfinite(p).all()) for p in drawn)
    # A tiny repetition penalty divides seen logits into infinity: still a distribution, the seen token wins.
    penalised = apply_penalties(torch.tensor([3.0, 1.0, 2.0]), torch.tensor([0]), SamplingParams(repetition_penalty=1e-45))
    assert sample(penalised, SamplingParams(), torch.Generator()) == 0
    distribution = log_distribution(nan_row, SamplingParams())
    assert not bool(distribution.isnan().any())


def test_a_row_with_no_allowed_token_is_a_clean_engine_failure():
    for row in (torch.full((4,), float("-inf")), torch.full((4,), float("nan"))):
        for params in (SamplingParams(), SamplingParams(temperature=0.0)):
            with pytest.raises(EngineFailure, match="No token could be sampled"):
                sample(row.clone(), params, torch.Generator())


def test_log_level_reaches_the_root_logger():
    # Litestar configures the root logger (its queue handler) at INFO unless told otherwise: --log-level must win.
    import logging

    from app.server import create_app

    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    try:
        create_app(Settings(model="/nonexistent/model", log_level="warning"))
        assert root.level == logging.WARNING
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers

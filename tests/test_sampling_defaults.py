"""Sampling defaults for what a request leaves unset (runtime/sampling_defaults.py): the model's
generation_config.json, as vLLM (`--generation-config auto`) and SGLang (`--sampling-defaults model`) apply it,
under vLLM's `--override-generation-config`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from app.openai import schemas as s
from app.openai.convert import sampling_params
from app.settings import load_settings
from runtime.sampling_defaults import SamplingDefaults, load_sampling_defaults
from runtime.types import SamplingParams
from tests.live_server import LiveServer, start_server


def test_the_model_file_gives_defaults_and_the_override_wins(tmp_path: Path) -> None:
    (tmp_path / "generation_config.json").write_text(json.dumps({
        "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05, "do_sample": True,
        "eos_token_id": [1, 2], "max_new_tokens": 2048, "min_p": 7}))  # min_p out of range: skipped, not fatal
    defaults = load_sampling_defaults(str(tmp_path))
    assert defaults.values == {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05,
                               "max_new_tokens": 2048}
    assert load_sampling_defaults(str(tmp_path), "auto", '{"temperature": 0, "top_k": -1}').values == {
        "temperature": 0, "top_p": 0.8, "top_k": 0, "repetition_penalty": 1.05, "max_new_tokens": 2048}
    assert load_sampling_defaults(str(tmp_path), "vllm").values == {}
    assert load_sampling_defaults("/nowhere", "auto").values == {}  # a model without the file: none
    assert load_sampling_defaults("/nowhere", str(tmp_path)).values == defaults.values  # another folder's


@pytest.mark.parametrize("override, problem", [
    ('{"temp": 0}', "not a sampling default"), ('{"temperature": "0"}', "must be a number"),
    ('{"top_p": 2}', "out of range"), ('{"max_new_tokens": 0}', "out of range"), ("[1]", "JSON object"),
    ("{", "not valid JSON"),
])
def test_a_bad_override_stops_the_server_at_once(override: str, problem: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=problem):
        load_sampling_defaults("/nowhere", "vllm", override)
    with pytest.raises(SystemExit):
        load_settings(["--override-generation-config", override], environ={})
    assert problem in capsys.readouterr().err


def test_only_what_the_request_left_unset_is_filled() -> None:
    defaults = SamplingDefaults({"temperature": 0.0, "top_k": 20, "max_new_tokens": 9})
    req = s.ChatCompletionRequest(model="m", messages=[], temperature=0.5)
    filled = defaults.apply(sampling_params(req, None))
    assert (filled.temperature, filled.top_k, filled.top_p, filled.max_new_tokens) == (0.5, 20, 1.0, 9)
    assert filled.unset == frozenset()
    explicit = defaults.apply(sampling_params(s.ChatCompletionRequest(model="m", messages=[], top_k=5), 3))
    assert (explicit.temperature, explicit.top_k, explicit.max_new_tokens) == (0.0, 5, 3)
    plain = SamplingParams()  # built by the server itself (warm-up, tests): nothing marked unset, nothing filled
    assert defaults.apply(plain) is plain


@pytest.fixture(scope="module")
def defaults_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                    server_logs: Path) -> Iterator[LiveServer]:
    model = tmp_path_factory.mktemp("greedy-model") / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "generation_config.json").write_text(json.dumps({"temperature": 0.0, "max_new_tokens": 64}))
    s = start_server("--model", str(model), "--served-model-name", "m", "--context-length", "4096",
                     "--override-generation-config", '{"max_new_tokens": 5}', log_dir=server_logs)
    yield s
    s.stop()


def test_requests_without_sampling_fields_get_the_defaults(defaults_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=defaults_server.base_url + "/v1", api_key="x", max_retries=0, timeout=120)
    messages = [{"role": "user", "content": "Say something."}]

    def chat(**extra):
        return client.chat.completions.create(model="m", messages=messages, extra_body={"ignore_eos": True}, **extra)

    first, second = chat(), chat()
    assert first.usage.completion_tokens == 5  # the override's max_new_tokens, over the model's 64
    assert first.choices[0].message.content == second.choices[0].message.content  # the model's temperature 0
    assert chat(max_tokens=8).usage.completion_tokens == 8
    randoms = {chat(temperature=1.0, seed=seed, max_tokens=12).choices[0].message.content for seed in (1, 2, 3)}
    assert len(randoms) > 1  # a temperature the request sends wins
    claude = anthropic.Anthropic(base_url=defaults_server.base_url, api_key="x", max_retries=0, timeout=120)
    texts = {claude.messages.create(model="m", max_tokens=6, messages=messages).content[0].text for _ in range(2)}
    assert len(texts) == 1
    response = client.responses.create(model="m", input="Say something.", store=False)
    assert response.usage.output_tokens <= 5

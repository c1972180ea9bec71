"""LoRA adapters per request, as vLLM (--lora-modules) and SGLang (--lora-paths) users script them: each adapter
a model id, chosen by `model` on every route; on the CPU engine applied per row of the batched forward pass (and
through peft on the transformers path), on SGLang through its own LoRA support (the fake, tests/fake_sglang)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
import uuid
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import torch

from app.settings import load_settings
from runtime.adapters import LoraAdapter, check_ranks, parse_adapters, split_specs
from runtime.engines import EngineConfig, create_engine
from runtime.engines.cpu.kv_cache import KVPool, RadixCache
from runtime.engines.cpu.model import Shape
from runtime.model import load_model_info
from runtime.types import EngineRequest, SamplingParams, TokenIds
from runtime.engines.sglang import SglangEngine
from tests.lora_adapters import write_adapter
from tests.live_server import LiveServer, start_server
from tests.test_sglang_engine import MODEL as SGLANG_MODEL

BASE = "lora-base"
PROMPT = "def fibonacci(n):\n    # the n-th number\n"


@pytest.fixture(scope="module")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "sql-lora": write_adapter(root / "sql", tiny_model_dir, seed=1),
        "chat-lora": write_adapter(root / "chat", tiny_model_dir, seed=2, targets=("k_proj", "gate_proj", "up_proj")),
        "zero-lora": write_adapter(root / "zero", tiny_model_dir, b_std=0.0),  # B = 0, as PEFT initialises it
    }


# -- the flags ---------------------------------------------------------------------------------------------------


def test_both_spellings_and_both_json_forms_name_adapters() -> None:
    vllm_json = '{"name": "b", "path": "/ad/b", "base_model_name": "m"}'
    sglang_json = '{"lora_name": "d", "lora_path": "/ad/d", "pinned": true}'
    settings = load_settings(["--lora-modules", "a=/ad/a", vllm_json, "--lora-paths", f"c=/ad/c,{sglang_json}",
                              "/ad/e"], environ={})
    assert settings.lora_adapters == (LoraAdapter("a", "/ad/a"), LoraAdapter("b", "/ad/b"),
                                      LoraAdapter("c", "/ad/c"), LoraAdapter("d", "/ad/d"),
                                      LoraAdapter("/ad/e", "/ad/e"))  # SGLang's bare path names itself
    from_env = load_settings([], environ={"INFER_LORA_MODULES": f"a=/ad/a,{vllm_json}"})
    assert [a.name for a in from_env.lora_adapters] == ["a", "b"]
    assert split_specs('x=/p, {"name": "y, z", "path": "/q"}') == ["x=/p", '{"name": "y, z", "path": "/q"}']


def test_the_peers_lora_sizing_flags_are_accepted_under_both_spellings() -> None:
    vllm = load_settings(["--enable-lora", "--max-lora-rank", "64", "--max-loras", "2", "--max-cpu-loras", "4"],
                         environ={})
    sglang = load_settings(["--max-loras-per-batch", "2", "--max-loaded-loras", "4", "--max-lora-rank", "64"],
                           environ={})
    for settings in (vllm, sglang):
        assert (settings.max_lora_rank, settings.max_loras, settings.max_cpu_loras) == (64, 2, 4)
    assert vllm.enable_lora and not sglang.enable_lora


@pytest.mark.parametrize("flag", ["--max-lora-rank", "--max-loras", "--max-loaded-loras"])
def test_a_lora_sizing_flag_below_one_stops_the_start_naming_it(flag: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        load_settings([flag, "0"], environ={})
    assert "must be at least 1" in capsys.readouterr().err


def test_an_adapter_above_max_lora_rank_is_refused_at_start(tiny_model_dir: Path, tmp_path: Path) -> None:
    adapter = LoraAdapter("big", str(write_adapter(tmp_path / "big", tiny_model_dir, rank=8)))
    check_ranks([adapter], 8)
    check_ranks([adapter], None)
    with pytest.raises(ValueError, match=r"'big' .* rank 8, above --max-lora-rank 4"):
        check_ranks([adapter], 4)
    engine = create_engine("cpu", EngineConfig(str(tiny_model_dir), "tiny", lora_adapters=(adapter,),
                                               max_lora_rank=4), load_model_info(str(tiny_model_dir)))
    with pytest.raises(ValueError, match="above --max-lora-rank 4"):
        asyncio.run(engine.start())


@pytest.mark.parametrize("items, problem", [
    (["a=/x", "a=/y"], "given twice"),
    (['{"name": "a"}'], "needs"),
    (["{not json}"], "not valid JSON"),
    (["=/x"], "not name=path"),
])
def test_bad_adapter_specs_are_refused(items: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_adapters(items)


def test_an_adapter_named_as_the_served_model_is_refused_at_startup(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load_settings(["--served-model-name", "m", "--lora-modules", "m=/ad"], environ={})
    assert "served model's name" in capsys.readouterr().err


# -- the CPU engine ----------------------------------------------------------------------------------------------


async def _ids(engine, prompt: list[int], adapter: str | None, n: int = 16) -> list[int]:
    request = EngineRequest(uuid.uuid4().hex, tuple(prompt), SamplingParams(
        temperature=0.0, max_new_tokens=n, ignore_eos=True, return_token_ids=True), adapter=adapter)
    return [i async for event in engine.generate(request) if isinstance(event, TokenIds) for i in event.ids]


def _engine_outputs(model_dir: Path, adapters: dict[str, Path], backend: str) -> dict[str | None, list[int]]:
    """Greedy token ids of one prompt with the base and each adapter, all running at once."""
    names = [None, *adapters]

    async def main():
        info = load_model_info(str(model_dir))
        config = EngineConfig(str(model_dir), BASE, cpu_backend=backend,
                              lora_adapters=tuple(LoraAdapter(n, str(p)) for n, p in adapters.items()))
        engine = create_engine("cpu", config, info)
        await engine.start()
        try:
            prompt = info.tokenizer.encode(PROMPT)
            return dict(zip(names, await asyncio.gather(*(_ids(engine, prompt, n) for n in names))))
        finally:
            await engine.close()

    return asyncio.run(main())


def test_our_batched_lora_gives_peft_s_tokens(tiny_model_dir: Path, adapters: dict[str, Path]) -> None:
    """The native path (deltas per row, in one batch with the base) against peft on the transformers path (an
    independent implementation of the same adapter): the same greedy tokens, for every adapter and the base."""
    native = _engine_outputs(tiny_model_dir, adapters, "native")
    reference = _engine_outputs(tiny_model_dir, adapters, "transformers")
    assert native == reference
    assert native["sql-lora"] != native[None] and native["chat-lora"] != native[None]
    assert native["zero-lora"] == native[None]


@pytest.mark.parametrize("backend", ["native", "transformers"])
def test_a_prefix_cached_by_one_adapter_is_not_read_by_another(tiny_model_dir: Path, adapters: dict[str, Path],
                                                              backend: str) -> None:
    """The same long prompt with the base, then each adapter, then the base again, each after the other has
    cached it: every output as with no prefix cache at all."""
    order = [None, "sql-lora", "chat-lora", None, "sql-lora"]

    async def run(**config):
        info = load_model_info(str(tiny_model_dir))
        engine = create_engine("cpu", EngineConfig(
            str(tiny_model_dir), BASE, cpu_backend=backend, **config,
            lora_adapters=tuple(LoraAdapter(n, str(p)) for n, p in adapters.items())), info)
        await engine.start()
        try:
            prompt = info.tokenizer.encode(PROMPT * 6)  # well over the smallest prefix either cache shares
            return [await _ids(engine, prompt, name, 8) for name in order]
        finally:
            await engine.close()

    cached = asyncio.run(run())
    uncached = asyncio.run(run(disable_radix_cache=True, prefix_cache_entries=0))
    assert cached == uncached
    assert cached[0] != cached[1] != cached[2]


def test_the_radix_tree_shares_no_blocks_between_adapters(tiny_model_dir: Path) -> None:
    info = load_model_info(str(tiny_model_dir))
    pool = KVPool(Shape.of(info.config), torch.float32, 1 << 20, 4)
    radix = RadixCache(pool)
    tokens = list(range(12))
    blocks = pool.allocate(3)
    chain: list = []
    radix.insert(tokens, blocks, chain, partial_tail=True, adapter="a")
    radix.unlock(chain)
    assert len(radix.match(tokens, 12, adapter="a")[0]) == 3
    assert radix.match(tokens, 12)[0] == [] and radix.match(tokens, 12, adapter="b")[0] == []
    assert radix.evict(3) == 3 and radix.available_blocks == pool.num_blocks - 1  # its tree evicts as any other


# -- a live server -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lora_server(tiny_model_dir: Path, adapters: dict[str, Path], server_logs: Path):
    s = start_server("--model", str(tiny_model_dir), "--engine", "cpu", "--served-model-name", BASE,
                     "--context-length", "4096",
                     "--lora-modules", f"sql-lora={adapters['sql-lora']}",
                     json.dumps({"name": "chat-lora", "path": str(adapters["chat-lora"])}),
                     "--lora-paths", f"zero-lora={adapters['zero-lora']}", log_dir=server_logs)
    yield s
    s.stop()


@pytest.fixture()
def client(lora_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=lora_server.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _completion_ids(client: openai.OpenAI, model: str, prompt: str = PROMPT) -> list[int]:
    out = client.completions.create(model=model, prompt=prompt, max_tokens=24, temperature=0,
                                    extra_body={"return_token_ids": True, "ignore_eos": True})
    return out.choices[0].token_ids


def test_models_lists_each_adapter_as_vllm_does(client: openai.OpenAI, adapters: dict[str, Path]) -> None:
    cards = {m.id: m for m in client.models.list().data}
    assert list(cards) == [BASE, "sql-lora", "chat-lora", "zero-lora"]
    for name in ("sql-lora", "chat-lora", "zero-lora"):
        assert cards[name].parent == BASE and cards[name].root == str(adapters[name])
    assert cards[BASE].parent is None
    assert client.models.retrieve("sql-lora").root == str(adapters["sql-lora"])


def test_an_adapter_changes_the_output_and_a_zero_adapter_does_not(client: openai.OpenAI) -> None:
    base = _completion_ids(client, BASE)
    assert _completion_ids(client, "sql-lora") != base
    assert _completion_ids(client, "chat-lora") != base
    assert _completion_ids(client, "zero-lora") == base


def test_base_requests_batched_with_adapter_requests_are_unchanged(client: openai.OpenAI) -> None:
    prompts = [PROMPT, "import os\nprint(os.getcwd())\n", "class Stack:\n"]
    alone = [_completion_ids(client, BASE, p) for p in prompts]
    adapter_alone = _completion_ids(client, "sql-lora", prompts[0])
    runs = [(model, p) for p in prompts for model in (BASE, "sql-lora", "chat-lora")] * 2
    with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
        mixed = list(pool.map(lambda run: _completion_ids(client, *run), runs))
    for (model, prompt), ids in zip(runs, mixed):
        if model == BASE:
            assert ids == alone[prompts.index(prompt)]
        if model == "sql-lora" and prompt == prompts[0]:
            assert ids == adapter_alone  # and the adapter's own output does not depend on its batch either


def test_every_route_takes_the_adapter_as_its_model(client: openai.OpenAI, lora_server: LiveServer) -> None:
    messages = [{"role": "user", "content": "Write a haiku about tests."}]

    def chat(model: str) -> str:
        out = client.chat.completions.create(model=model, messages=messages, max_tokens=12, temperature=0)
        assert out.model == model
        return out.choices[0].message.content

    assert chat("sql-lora") != chat(BASE)

    def responses(model: str) -> str:
        out = client.responses.create(model=model, input="Write a haiku about tests.", max_output_tokens=12,
                                      temperature=0, store=False)
        assert out.model == model
        return out.output_text

    assert responses("sql-lora") == chat("sql-lora") != responses(BASE)

    claude = anthropic.Anthropic(base_url=lora_server.base_url, api_key="unused", max_retries=0)

    def message(model: str) -> str:
        out = claude.messages.create(model=model, max_tokens=12, messages=messages, extra_body={"temperature": 0.0})
        assert out.model == model
        return "".join(block.text for block in out.content if block.type == "text")

    assert message("sql-lora") == chat("sql-lora") != message(BASE)
    assert [m.id for m in claude.models.list().data] == [BASE, "sql-lora", "chat-lora", "zero-lora"]

    def generate(**body) -> list[int]:
        reply = httpx.post(lora_server.base_url + "/generate", timeout=60, json={
            "text": PROMPT, "sampling_params": {"max_new_tokens": 24, "temperature": 0, "ignore_eos": True}, **body})
        reply.raise_for_status()
        return reply.json()["output_ids"]

    by_lora_path = generate(lora_path="sql-lora")
    assert by_lora_path == generate(model="sql-lora") == _completion_ids(client, "sql-lora")
    assert generate() == _completion_ids(client, BASE)
    missing = httpx.post(lora_server.base_url + "/generate", json={"text": "hi", "lora_path": "nope"}, timeout=60)
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "lora_path"
    # SGLang's batch form: one adapter per prompt, null for the base model
    batch = httpx.post(lora_server.base_url + "/generate", timeout=60, json={
        "text": [PROMPT, PROMPT, PROMPT], "lora_path": ["sql-lora", None, "chat-lora"],
        "sampling_params": {"max_new_tokens": 24, "temperature": 0, "ignore_eos": True}})
    batch.raise_for_status()
    assert [out["output_ids"] for out in batch.json()] == [by_lora_path, generate(), generate(lora_path="chat-lora")]
    for lora_path, param in ((["sql-lora"], "lora_path"), (["sql-lora", "nope", None], "lora_path[1]")):
        bad = httpx.post(lora_server.base_url + "/generate", timeout=60,
                         json={"text": [PROMPT, PROMPT, PROMPT], "lora_path": lora_path})
        assert bad.status_code in (400, 404) and bad.json()["error"]["param"] == param


def test_an_unknown_adapter_is_404_model_not_found(client: openai.OpenAI, lora_server: LiveServer) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-lora", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_found" and "sql-lora" in err.value.message
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="no-such-lora", prompt="hi")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-lora")
    claude = anthropic.Anthropic(base_url=lora_server.base_url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(model="no-such-lora", max_tokens=4, messages=[{"role": "user", "content": "hi"}])


def test_a_directory_that_is_no_adapter_stops_startup_with_the_reason(tiny_model_dir: Path, tmp_path: Path,
                                                                   server_logs: Path) -> None:
    s = start_server("--model", str(tiny_model_dir), "--lora-modules", f"bad={tmp_path}", log_dir=server_logs,
                     wait=False)
    try:
        for _ in range(600):
            if "engine start failed" in s.log():
                break
            time.sleep(0.1)
        assert "no adapter_config.json" in s.log()
        assert httpx.get(s.base_url + "/health", timeout=10).status_code == 503
    finally:
        s.stop()


# -- SGLang (its contract: tests/fake_sglang, from sglang 0.5.23's source) --------------------------------------


def test_sglang_loads_the_adapters_and_runs_each_request_with_its_own(fake_sglang) -> None:
    config = EngineConfig("/models/tiny", "tiny", lora_adapters=(LoraAdapter("sql", "/ad/sql"),
                                                                 LoraAdapter("chat", "/ad/chat")))

    async def main():
        engine = SglangEngine(config, SGLANG_MODEL)
        await engine.start()
        try:
            for adapter in ("sql", None):
                request = EngineRequest(uuid.uuid4().hex, (5, 6, 7), SamplingParams(), adapter=adapter)
                [event async for event in engine.generate(request)]
        finally:
            await engine.close()

    asyncio.run(main())
    sglang = fake_sglang.control.engines[-1]
    assert sglang.kwargs["enable_lora"] is True
    assert sglang.kwargs["lora_paths"] == [{"lora_name": "sql", "lora_path": "/ad/sql"},
                                           {"lora_name": "chat", "lora_path": "/ad/chat"}]
    assert sglang.tokenizer_manager.lora_names == {"sql", "chat"}
    assert "max_lora_rank" not in sglang.kwargs  # unset sizing flags leave SGLang's defaults
    assert [call["lora_path"] for call in sglang.calls[-2:]] == ["sql", None]


def test_sglang_without_adapters_sends_no_lora_arguments(fake_sglang) -> None:
    async def main():
        engine = SglangEngine(EngineConfig("/models/tiny", "tiny"), SGLANG_MODEL)
        await engine.start()
        await engine.close()

    asyncio.run(main())
    sglang = fake_sglang.control.engines[-1]
    assert "enable_lora" not in sglang.kwargs and "lora_paths" not in sglang.kwargs
    assert all(call["lora_path"] is None for call in sglang.calls)


def test_sglang_gets_the_lora_sizing_flags_under_its_own_names(fake_sglang) -> None:
    config = EngineConfig("/models/tiny", "tiny", enable_lora=True, max_lora_rank=64, max_loras=2, max_cpu_loras=4)

    async def main():
        engine = SglangEngine(config, SGLANG_MODEL)
        await engine.start()
        await engine.close()

    asyncio.run(main())
    kwargs = fake_sglang.control.engines[-1].kwargs
    assert (kwargs["enable_lora"], kwargs["max_lora_rank"], kwargs["max_loras_per_batch"],
            kwargs["max_loaded_loras"]) == (True, 64, 2, 4)

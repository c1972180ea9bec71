"""LoRA adapters loaded and unloaded while serving (app/lora_routes.py): vLLM's /v1/load_lora_adapter and
/v1/unload_lora_adapter, SGLang's /load_lora_adapter and /unload_lora_adapter, on the CPU engine for real and on
SGLang through its contract (tests/fake_sglang, from sglang 0.5.23's source)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from app.settings import load_settings
from runtime.adapters import LoraAdapter
from runtime.engines import AdapterLoading, EngineConfig
from runtime.engines.cpu.kv_cache import KVPool, RadixCache
from runtime.engines.cpu.model import Shape
from runtime.engines.sglang import SglangEngine
from runtime.errors import InvalidRequest, NotFound
from tests.live_server import LiveServer, start_server
from tests.lora_adapters import write_adapter
from tests.test_sglang_engine import MODEL as SGLANG_MODEL

BASE = "runtime-base"
LONG_PROMPT = "def fibonacci(n):\n    # the n-th number, computed the slow way on purpose\n" * 4


@pytest.fixture(scope="module")
def paths(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runtime-adapters")
    return {"sql": write_adapter(root / "sql", tiny_model_dir, seed=1),
            "chat": write_adapter(root / "chat", tiny_model_dir, seed=2, targets=("k_proj", "gate_proj", "up_proj")),
            "big": write_adapter(root / "big", tiny_model_dir, seed=3, rank=16)}


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, paths: dict[str, Path], server_logs: Path) -> Iterator[LiveServer]:
    s = start_server("--model", str(tiny_model_dir), "--served-model-name", BASE, "--allow-runtime-lora",
                     "--lora-modules", f"startup-sql={paths['sql']}", "--max-lora-rank", "8", log_dir=server_logs)
    yield s
    s.stop()


@pytest.fixture()
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _ids(client: openai.OpenAI, model: str, prompt: str = LONG_PROMPT, tokens: int = 16) -> list[int]:
    out = client.completions.create(model=model, prompt=prompt, max_tokens=tokens, temperature=0,
                                    extra_body={"return_token_ids": True, "ignore_eos": True})
    return out.choices[0].token_ids


def _post(server: LiveServer, path: str, body: dict) -> httpx.Response:
    return httpx.post(server.base_url + path, json=body, timeout=120)


def test_vllm_routes_load_serve_and_unload(server: LiveServer, client: openai.OpenAI, paths: dict[str, Path]) -> None:
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="sql", prompt="x", max_tokens=2)
    loaded = _post(server, "/v1/load_lora_adapter", {"lora_name": "sql", "lora_path": str(paths["sql"])})
    assert loaded.status_code == 200 and loaded.text == "Success: LoRA adapter 'sql' added successfully."
    assert [m.id for m in client.models.list().data] == [BASE, "startup-sql", "sql"]
    assert client.models.retrieve("sql").root == str(paths["sql"])
    base = _ids(client, BASE)
    assert _ids(client, "sql") == _ids(client, "startup-sql") != base  # as if named at start

    again = _post(server, "/v1/load_lora_adapter", {"lora_name": "sql", "lora_path": str(paths["sql"])})
    assert again.status_code == 400 and again.json()["error"]["param"] == "lora_name"
    unloaded = _post(server, "/v1/unload_lora_adapter", {"lora_name": "sql"})
    assert unloaded.status_code == 200 and unloaded.text == "Success: LoRA adapter 'sql' removed successfully."
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="sql", prompt="x", max_tokens=2)
    assert [m.id for m in client.models.list().data] == [BASE, "startup-sql"]
    missing = _post(server, "/v1/unload_lora_adapter", {"lora_name": "sql"})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "lora_name"
    assert _ids(client, BASE) == base


def test_a_name_reloaded_with_other_weights_never_reuses_the_old_prefix_cache(
        server: LiveServer, client: openai.OpenAI, paths: dict[str, Path]) -> None:
    assert _post(server, "/v1/load_lora_adapter", {"lora_name": "x", "lora_path": str(paths["sql"])}).is_success
    as_sql = _ids(client, "x")  # LONG_PROMPT's blocks now cached in x's tree
    # vLLM's load_inplace: the same name, other weights
    inplace = _post(server, "/v1/load_lora_adapter",
                    {"lora_name": "x", "lora_path": str(paths["chat"]), "load_inplace": True})
    assert inplace.status_code == 200
    assert _post(server, "/v1/load_lora_adapter", {"lora_name": "chat", "lora_path": str(paths["chat"])}).is_success
    assert _ids(client, "x") == _ids(client, "chat") != as_sql
    for name in ("x", "chat"):
        assert _post(server, "/v1/unload_lora_adapter", {"lora_name": name}).is_success


def test_unload_waits_for_the_adapter_s_running_requests(server: LiveServer, client: openai.OpenAI,
                                                          paths: dict[str, Path]) -> None:
    assert _post(server, "/v1/load_lora_adapter", {"lora_name": "busy", "lora_path": str(paths["sql"])}).is_success
    chunks: list = []
    started = threading.Event()

    def stream() -> float:
        for chunk in client.completions.create(model="busy", prompt=LONG_PROMPT, max_tokens=600, temperature=0,
                                               stream=True, extra_body={"ignore_eos": True}):
            chunks.append(chunk)
            started.set()
        return time.monotonic()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(stream)
        assert started.wait(120)  # the request is running: the unload must wait for it (not abort it, not 404 it)
        sent_at, seen_before_unload = time.monotonic(), len(chunks)
        unloaded = _post(server, "/v1/unload_lora_adapter", {"lora_name": "busy"})
        unloaded_at = time.monotonic()
        ended_at = running.result(timeout=300)
    assert unloaded.status_code == 200
    assert chunks[-1].choices[0].finish_reason == "length"  # it ran to the end, not aborted
    assert sum(len(c.choices[0].text) > 0 for c in chunks if c.choices) > 10
    assert seen_before_unload < len(chunks) - 10  # the unload was sent while the stream was well under way
    # ... and answered only as the stream ended, not at once (which would take milliseconds of seconds)
    assert unloaded_at - sent_at > 0.5 * (ended_at - sent_at)


def test_unload_right_after_a_client_went_away_frees_the_adapter(tiny_model_dir: Path, paths: dict[str, Path]) -> None:
    """A consumer that stops listening leaves its sequence in the CPU engine's scheduler until the worker's next
    pass: the unload must wait for that pass, not free blocks the sequence still locks (an AssertionError, 500)."""
    from runtime.engines import create_engine
    from runtime.model import load_model_info
    from runtime.types import EngineRequest, SamplingParams, TextDelta

    async def drain(engine, req: EngineRequest) -> None:
        async for _ in engine.generate(req):
            pass

    async def main() -> None:
        info = load_model_info(str(tiny_model_dir))
        engine = create_engine("cpu", EngineConfig(str(tiny_model_dir), "m"), info)
        await engine.start()
        try:
            ids = tuple(info.tokenizer.encode(LONG_PROMPT * 4))
            for trial in range(3):
                name = f"gone{trial}"
                await engine.load_adapter(LoraAdapter(name, str(paths["sql"])))
                others = [asyncio.create_task(drain(engine, EngineRequest(
                    f"other{trial}-{i}", ids[: 100 + i], SamplingParams(max_new_tokens=20, ignore_eos=True))))
                    for i in range(4)]  # (long steps: the window this test needs)
                stream = engine.generate(EngineRequest(f"gone{trial}", ids, SamplingParams(max_new_tokens=200,
                                                                                          ignore_eos=True), adapter=name))
                async for event in stream:
                    if isinstance(event, TextDelta):
                        break
                await stream.aclose()  # the client went away
                await engine.unload_adapter(name)
                await asyncio.gather(*others)
            base = [e async for e in engine.generate(EngineRequest("after", ids[:50], SamplingParams(max_new_tokens=4)))]
            assert base[-1].usage.completion_tokens == 4
        finally:
            await engine.close()

    asyncio.run(main())


def test_max_cpu_loras_evicts_the_least_recently_used_and_loads_it_back(tiny_model_dir: Path,
                                                                         paths: dict[str, Path]) -> None:
    """As vLLM's --max-cpu-loras and SGLang's --max-loaded-loras: at most N adapters' weights are held, the least
    recently used one not in use is evicted, and a request naming an evicted one loads it back, with the same
    tokens as before; two in use at once are both held (over the cap) until one is free."""
    from runtime.engines import create_engine
    from runtime.model import load_model_info
    from runtime.types import EngineRequest, Finished, SamplingParams, TokenIds

    async def ids(engine, adapter: str | None, rid: str) -> list[int]:
        request = EngineRequest(rid, tuple(range(5, 60)), SamplingParams(
            max_new_tokens=6, ignore_eos=True, temperature=0.0, return_token_ids=True), adapter=adapter)
        events = [e async for e in engine.generate(request)]
        assert isinstance(events[-1], Finished)
        return [t for e in events if isinstance(e, TokenIds) for t in e.ids]

    async def main() -> None:
        info = load_model_info(str(tiny_model_dir))
        config = EngineConfig(str(tiny_model_dir), "m", max_cpu_loras=1,
                              lora_adapters=(LoraAdapter("a", str(paths["sql"])), LoraAdapter("b", str(paths["chat"]))))
        engine = create_engine("cpu", config, info)
        await engine.start()
        try:
            held = lambda: sorted(engine._scheduler.adapters)  # noqa: E731
            assert held() == ["a"]  # the second one named at start is read, then left on disk
            first_a = await ids(engine, "a", "a1")
            first_b = await ids(engine, "b", "b1")  # loads b, evicts a
            assert first_a != first_b
            assert held() == ["b"]
            assert await ids(engine, "a", "a2") == first_a and held() == ["a"]  # loaded back: same tokens
            assert await ids(engine, "b", "b2") == first_b
            await engine.load_adapter(LoraAdapter("c", str(paths["sql"])))  # a runtime load evicts too
            assert held() == ["c"]
            both = await asyncio.gather(ids(engine, "a", "a3"), ids(engine, "b", "b3"))  # in use at once
            assert both == [first_a, first_b]
            for _ in range(250):  # back under the cap once they are done
                if len(held()) == 1:
                    break
                await asyncio.sleep(0.02)
            assert len(held()) == 1 and list(engine._resident) == held()
            await engine.unload_adapter("a")  # evicted or not, unloading works
            with pytest.raises(NotFound):
                await ids(engine, "a", "a4")
            assert await ids(engine, "c", "c1") == first_a  # (c has a's weights)
        finally:
            await engine.close()

    asyncio.run(main())


def test_sglang_routes_answer_in_sglang_s_shape(server: LiveServer, paths: dict[str, Path]) -> None:
    loaded = _post(server, "/load_lora_adapter", {"lora_name": "s", "lora_path": str(paths["chat"]), "pinned": True})
    assert loaded.status_code == 200
    assert loaded.json() == {"success": True, "error_message": None,
                             "loaded_adapters": {"startup-sql": str(paths["sql"]), "s": str(paths["chat"])}}
    assert _post(server, "/unload_lora_adapter", {"lora_name": "s"}).json()["success"] is True
    missing = _post(server, "/unload_lora_adapter", {"lora_name": "s"})
    assert missing.status_code == 400 and missing.json()["success"] is False
    assert "'s' is not loaded" in missing.json()["error_message"]


def test_a_failed_load_inplace_keeps_the_adapter_it_would_replace(server: LiveServer, client: openai.OpenAI,
                                                                   paths: dict[str, Path]) -> None:
    assert _post(server, "/v1/load_lora_adapter", {"lora_name": "keep", "lora_path": str(paths["sql"])}).is_success
    before = _ids(client, "keep")
    for bad in ("/nonexistent/adapter", str(paths["big"]), str(paths["sql"] / "adapter_config.json")):
        reply = _post(server, "/v1/load_lora_adapter", {"lora_name": "keep", "lora_path": bad, "load_inplace": True})
        assert reply.status_code == 400 and reply.json()["error"]["param"] == "lora_path"
        assert client.models.retrieve("keep").root == str(paths["sql"])
        assert _ids(client, "keep") == before
    assert _post(server, "/v1/unload_lora_adapter", {"lora_name": "keep"}).is_success


def test_updates_of_one_name_at_once_each_get_a_clear_answer(server: LiveServer, client: openai.OpenAI,
                                                             paths: dict[str, Path]) -> None:
    """Concurrent load_inplace of a loaded name each succeed; loads and unloads agree with what is served."""
    assert _post(server, "/v1/load_lora_adapter", {"lora_name": "race", "lora_path": str(paths["sql"])}).is_success
    body = {"lora_name": "race", "lora_path": str(paths["chat"]), "load_inplace": True}
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: _post(server, "/v1/load_lora_adapter", body), range(6)))
    assert [r.status_code for r in replies] == [200] * 6
    assert client.models.retrieve("race").root == str(paths["chat"])
    assert _post(server, "/v1/unload_lora_adapter", {"lora_name": "race"}).is_success

    def load_or_unload(i: int) -> int:
        if i % 2:
            return _post(server, "/v1/unload_lora_adapter", {"lora_name": "race"}).status_code
        return _post(server, "/v1/load_lora_adapter", {"lora_name": "race", "lora_path": str(paths["sql"])}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(load_or_unload, range(12)))
    assert set(codes) <= {200, 400, 404}
    served = "race" in {m.id for m in client.models.list().data}
    assert _post(server, "/v1/unload_lora_adapter", {"lora_name": "race"}).status_code == (200 if served else 404)


@pytest.mark.parametrize("body, param", [
    ({"lora_name": "bad", "lora_path": "/nonexistent/adapter"}, "lora_path"),
    ({"lora_name": "bad"}, "lora_path"),
    ({"lora_name": "", "lora_path": "/x"}, "lora_name"),
    ({"lora_name": BASE, "lora_path": "/x"}, "lora_name"),
    ({"lora_path": "/x"}, "lora_name"),
    ({"lora_name": 5, "lora_path": "/x"}, "lora_name"),
    ({"lora_name": "x" * 257, "lora_path": "/x"}, "lora_name"),
])
def test_bad_loads_are_400s_naming_the_field(server: LiveServer, body: dict, param: str) -> None:
    reply = _post(server, "/v1/load_lora_adapter", body)
    assert reply.status_code == 400 and reply.json()["error"]["param"] == param
    assert httpx.get(server.base_url + "/health", timeout=10).status_code == 200


def test_an_adapter_with_weights_that_are_not_finite_is_refused_at_load(
        server: LiveServer, client: openai.OpenAI, paths: dict[str, Path], tmp_path: Path) -> None:
    """Not served to fail every request naming it (no token can be sampled from NaN logits: a 500)."""
    import shutil

    from safetensors.torch import load_file, save_file

    target = tmp_path / "nan"
    shutil.copytree(paths["sql"], target)
    tensors = load_file(str(target / "adapter_model.safetensors"))
    first = sorted(tensors)[0]
    tensors[first] = tensors[first].clone().fill_(float("nan"))
    save_file(tensors, str(target / "adapter_model.safetensors"))
    reply = _post(server, "/v1/load_lora_adapter", {"lora_name": "nan", "lora_path": str(target)})
    assert reply.status_code == 400 and "not finite" in reply.json()["error"]["message"]
    assert "nan" not in {m.id for m in client.models.list().data}


def test_an_adapter_above_max_lora_rank_is_refused(server: LiveServer, client: openai.OpenAI,
                                                    paths: dict[str, Path]) -> None:
    reply = _post(server, "/v1/load_lora_adapter", {"lora_name": "big", "lora_path": str(paths["big"])})
    assert reply.status_code == 400 and "above --max-lora-rank 8" in reply.json()["error"]["message"]
    assert "big" not in {m.id for m in client.models.list().data}


def test_an_engine_that_cannot_unload_keeps_serving_the_adapter(tiny_model_dir: Path, paths: dict[str, Path],
                                                                 server_logs: Path) -> None:
    """The CPU engine's transformers path takes adapters at start only: its refusals leave the adapter served."""
    s = start_server("--model", str(tiny_model_dir), "--cpu-backend", "transformers", "--allow-runtime-lora",
                     "--lora-modules", f"fixed={paths['sql']}", log_dir=server_logs)
    try:
        client = openai.OpenAI(base_url=s.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)
        for path, body in (("/v1/unload_lora_adapter", {"lora_name": "fixed"}),
                           ("/v1/load_lora_adapter", {"lora_name": "fixed", "lora_path": str(paths["chat"]),
                                                      "load_inplace": True})):
            assert _post(s, path, body).status_code == 400
            assert client.completions.create(model="fixed", prompt="x", max_tokens=2).model == "fixed"
    finally:
        s.stop()


def test_routes_are_off_unless_allowed(tiny_model_dir: Path, paths: dict[str, Path], server_logs: Path) -> None:
    s = start_server("--model", str(tiny_model_dir), log_dir=server_logs)
    try:
        for path in ("/v1/load_lora_adapter", "/load_lora_adapter"):
            reply = _post(s, path, {"lora_name": "sql", "lora_path": str(paths["sql"])})
            assert reply.status_code in (400, 404) and "--allow-runtime-lora" in reply.text
    finally:
        s.stop()
    assert load_settings([], environ={"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}).allow_runtime_lora
    assert not load_settings([], environ={}).allow_runtime_lora


def test_radix_drop_tree_frees_every_block_of_the_adapter_only() -> None:
    import torch

    pool = KVPool(Shape(layers=1, hidden=2, heads=1, kv_heads=1, head_dim=2, eps=1e-6, vocab=10), torch.float32,
                  1 << 16, 4)
    radix = RadixCache(pool)
    free = pool.free_blocks
    for adapter in ("a", None):
        blocks = radix.allocate(3)
        chain: list = []
        radix.insert(list(range(10)), blocks, chain, partial_tail=True, adapter=adapter)
        radix.unlock(chain)
    assert pool.free_blocks == free - 6 and radix.unlocked == 6
    assert radix.drop_tree("a") == 3
    assert pool.free_blocks == free - 3 and radix.unlocked == 3 and "a" not in radix.roots
    assert radix.match(list(range(10)), 10, "a") == ([], None, 0)
    assert len(radix.match(list(range(10)), 10)[0]) == 2  # the base model's tree untouched


def test_sglang_loads_and_unloads_through_its_engine(fake_sglang) -> None:
    async def main():
        engine = SglangEngine(EngineConfig("/models/tiny", "tiny", allow_runtime_lora=True), SGLANG_MODEL)
        await engine.start()
        try:
            assert isinstance(engine, AdapterLoading)
            await engine.load_adapter(LoraAdapter("sql", "/ad/sql"))
            with pytest.raises(InvalidRequest, match="already loaded"):
                await engine.load_adapter(LoraAdapter("sql", "/ad/sql"))
            await engine.unload_adapter("sql")
            with pytest.raises(NotFound, match="does not exist"):
                await engine.unload_adapter("sql")
        finally:
            await engine.close()

    asyncio.run(main())
    sglang = fake_sglang.control.engines[-1]
    assert sglang.kwargs["enable_lora"] is True  # SGLang loads adapters while serving only with LoRA on
    assert sglang.lora_updates[:2] == [("load", "sql", "/ad/sql"), ("load", "sql", "/ad/sql")]

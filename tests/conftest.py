"""Shared fixtures: the tiny random model, and real servers on free 127.0.0.1 ports."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import openai
import pytest

from tests.claude_code.terse_model import build_terse_model
from tests.live_server import ROOT, LiveServer, start_server
from tests.tiny_model import build_tiny_model

MODEL_NAME = "test-model"
TERSE_MODEL_NAME = "terse-model"
API_KEY = "sk-test-key-1"
THINKING_KEY = "test-thinking-key"  # the shared server's --thinking-signature-key: tests can sign thinking blocks

# The API suites run on the CPU engine with the tiny model by default. On a GPU machine, `pytest -m gpu`
# (tests/test_gpu_suite.py) reruns them with these set, against a real SGLang engine and a small real model.
TEST_ENGINE = os.environ.get("INFER_TEST_ENGINE", "cpu")
TEST_MODEL = os.environ.get("INFER_TEST_MODEL")


def gpu_unavailable_reason() -> str | None:
    if importlib.util.find_spec("sglang") is None:
        return "sglang is not installed (pip install -e '.[gpu]' on a GPU machine)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine"
    return None


def pytest_configure(config: pytest.Config) -> None:
    """vLLM's peer suite files come from its pinned PyPI sdist (tests/peers/sources.py): put them in place before
    collection when this run collects tests/peers. A failed download fails the run; INFER_PEER_SUITES=0 skips it."""
    from tests.peers import sources

    if not sources.enabled() or not _collects(config, sources.PEERS / "vllm"):
        return
    try:
        sources.ensure_vllm_files()
    except sources.PeerSourceError as exc:
        raise pytest.UsageError(f"vLLM's peer suite files: {exc} (INFER_PEER_SUITES=0 runs without them)") from exc


def _collects(config: pytest.Config, folder: Path) -> bool:
    for arg in config.args or [str(config.rootpath / "tests")]:
        path = (config.invocation_params.dir / arg.split("::", 1)[0]).resolve()
        if path == folder or folder.is_relative_to(path) or path.is_relative_to(folder):
            return True
    return False


def pytest_report_header(config: pytest.Config) -> str | None:
    from tests.peers import sources

    if _collects(config, sources.PEERS / "vllm") and sources.missing_vllm_files():
        return "peer suites: vLLM's files are absent (INFER_PEER_SUITES=0), so they are not run"
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported (torch, transformers, the SDKs) will live all run: out of the collector's sight,
    so a full collection does not stall the in-process servers and timing-sensitive tests for ~0.4 s."""
    import gc

    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_marked = [item for item in items if "gpu" in item.keywords]
    reason = gpu_unavailable_reason() if gpu_marked else None
    for item in gpu_marked if reason else ():
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def terse_model_dir(tiny_model_dir: Path) -> Path:
    """The tiny model changed to end its turn after a few tokens, as an instruct model does, and never call."""
    return build_terse_model(tiny_model_dir, tiny_model_dir.parent / "terse")


@pytest.fixture(scope="session")
def served_model_args(tiny_model_dir: Path) -> list[str]:
    """The model and engine the API suites' servers run."""
    return ["--model", TEST_MODEL or str(tiny_model_dir), "--engine", TEST_ENGINE]


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def server(served_model_args: list[str], server_logs: Path) -> Iterator[LiveServer]:
    """The tiny model, no auth, a 4096-token window (so context errors are cheap to provoke)."""
    s = start_server(*served_model_args, "--served-model-name", MODEL_NAME,
                     "--model-aliases", "alias-model,qwen2.5-coder-32b-instruct", "--context-length", "4096",
                     "--max-request-bytes", str(2 * 1024 * 1024), "--thinking-signature-key", THINKING_KEY,
                     log_dir=server_logs)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def terse_server(terse_model_dir: Path, server_logs: Path) -> Iterator[LiveServer]:
    """The terse model (ends its turns, never calls), answering also to the API guide's model name."""
    s = start_server("--model", str(terse_model_dir), "--served-model-name", TERSE_MODEL_NAME,
                     "--model-aliases", "qwen2.5-coder-32b-instruct", "--context-length", "4096", log_dir=server_logs)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def auth_server(served_model_args: list[str], server_logs: Path) -> Iterator[LiveServer]:
    s = start_server(*served_model_args, "--served-model-name", MODEL_NAME, log_dir=server_logs,
                     env={"INFER_API_KEYS": f"{API_KEY},sk-second-key"})
    yield s
    s.stop()


@pytest.fixture(scope="session")
def default_server(server_logs: Path) -> Iterator[LiveServer]:
    """The real embedded default model (SmolLM2-135M-Instruct), converted into the repo's cache once."""
    s = start_server("--cache-dir", str(ROOT / ".cache" / "models"), log_dir=server_logs, timeout=600)
    yield s
    s.stop()


@pytest.fixture()
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)


FAKE_SGLANG_PATH = str(Path(__file__).resolve().parent / "fake_sglang")


@pytest.fixture
def fake_sglang() -> Iterator[ModuleType]:
    """The fake `sglang` (tests/fake_sglang), importable for one test; signal handlers, the event-loop policy
    and sys.modules restored afterwards (the fake, like the real one, changes them)."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT)}
    policy = asyncio.get_event_loop_policy()
    sys.path.insert(0, FAKE_SGLANG_PATH)
    try:
        yield importlib.import_module("sglang")
    finally:
        sys.path.remove(FAKE_SGLANG_PATH)
        for name in [n for n in sys.modules if n == "sglang" or n.startswith("sglang.")]:
            del sys.modules[name]
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
        asyncio.set_event_loop_policy(policy)

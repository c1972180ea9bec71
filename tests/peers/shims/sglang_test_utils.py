"""`sglang.test.test_utils` and the few other SGLang names the suites import: their launcher starts our server."""

from __future__ import annotations

import unittest
from types import ModuleType

from tests.peers.launch import free_port, launch

DEFAULT_SMALL_MODEL_NAME_FOR_TEST = "meta-llama/Llama-3.2-1B-Instruct"
DEFAULT_SMALL_CROSS_ENCODER_MODEL_NAME_FOR_TEST = "cross-encoder/ms-marco-MiniLM-L6-v2"
DEFAULT_TIMEOUT_FOR_SERVER_LAUNCH = 180
# The suites read the URL at import, before any server starts: a free port, chosen now, that each launch reuses.
DEFAULT_URL_FOR_TEST = f"http://127.0.0.1:{free_port()}"

_RUNNING: dict[int, object] = {}


class CustomTestCase(unittest.TestCase):
    pass


def popen_launch_server(model: str, base_url: str, timeout: float = DEFAULT_TIMEOUT_FOR_SERVER_LAUNCH,
                        api_key: str | None = None, other_args: list[str] | tuple[str, ...] = (), **_ignored):
    """Our server on `base_url`'s port; returns its process (tests keep it to pass its pid back)."""
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    server = launch(model, list(other_args), port=port, api_key=api_key, timeout=timeout)
    _RUNNING[server.process.pid] = server
    return server.process


def kill_process_tree(parent_pid: int, include_parent: bool = True, **_ignored) -> None:
    server = _RUNNING.pop(parent_pid, None)
    if server is not None:
        server.stop()


def stop_all() -> None:
    for pid in list(_RUNNING):
        kill_process_tree(pid)


def get_tokenizer(tokenizer_name: str, *args, **kwargs):
    from transformers import AutoTokenizer

    from tests.peers.launch import SETTINGS

    return AutoTokenizer.from_pretrained(str(SETTINGS.model_dir_for(tokenizer_name)))


# The rerank suite's query/documents (its data lives in sglang.test.runners); /v1/rerank is not served here.
TEST_RERANK_QUERY_DOCS = [
    {"query": "How many people live in Berlin?", "documents": ["Berlin has about 3.8 million inhabitants."]},
    {"query": "What is the capital of France?", "documents": ["Paris is the capital of France.", "Berlin is not."]},
]


def modules() -> dict[str, ModuleType]:
    """Module name -> stand-in module, for the import of an SGLang suite file."""
    import importlib.util
    from pathlib import Path

    this = globals()
    names = {
        "sglang": {}, "sglang.srt": {}, "sglang.test": {}, "sglang.test.kits": {},
        "sglang.srt.utils": {"kill_process_tree": kill_process_tree},
        "sglang.srt.utils.hf_transformers_utils": {"get_tokenizer": get_tokenizer},
        "sglang.srt.hf_transformers_utils": {"get_tokenizer": get_tokenizer},
        "sglang.test.runners": {"TEST_RERANK_QUERY_DOCS": TEST_RERANK_QUERY_DOCS},
        "sglang.test.test_utils": {name: this[name] for name in (
            "DEFAULT_SMALL_MODEL_NAME_FOR_TEST", "DEFAULT_SMALL_CROSS_ENCODER_MODEL_NAME_FOR_TEST",
            "DEFAULT_TIMEOUT_FOR_SERVER_LAUNCH", "DEFAULT_URL_FOR_TEST", "CustomTestCase", "popen_launch_server",
            "kill_process_tree", "get_tokenizer")},
    }
    built = {}
    for name, attrs in names.items():
        module = ModuleType(name)
        module.__path__ = []
        module.__dict__.update(attrs)
        built[name] = module
    # SGLang's JSON kit is part of their suite (python/sglang/test/kits/), kept beside the copied suites.
    kit_path = Path(__file__).resolve().parent.parent / "sglang" / "kits" / "json_constrained_kit.py"
    if kit_path.exists():
        spec = importlib.util.spec_from_file_location("sglang.test.kits.json_constrained_kit", kit_path)
        kit = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(kit)
        kit.TestJSONConstrainedMixin = kit.JSONConstrainedMixin  # the suite's name for it at the pinned commit
        built[kit.__name__] = kit
    return built

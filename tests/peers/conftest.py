"""The peer suites (vLLM's and SGLang's OpenAI-server tests, see README.md) against our server.

Their files are run as they are. What they import from their own repositories (vLLM's `tests.utils` and a few
`vllm` names, SGLang's `sglang.test.test_utils` and friends) is provided by tests/peers/shims/ while each file
is imported, and only then: the stand-ins are put in sys.modules for that import and taken out after it, so
nothing installed (a real sglang on a GPU machine) is shadowed for the rest of the run.
"""

from __future__ import annotations

import inspect
import sys
import unittest
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.peers import expected_failures, launch
from tests.peers.shims import sglang_test_utils, vllm_placeholders, vllm_tests_utils

PEERS = Path(__file__).resolve().parent


def _stand_ins(path: Path) -> dict:
    relative = path.relative_to(PEERS).parts
    if relative[0] == "vllm":
        return {**vllm_placeholders.modules(), "tests.utils": _module("tests.utils", vllm_tests_utils)}
    if relative[0] == "sglang":
        return sglang_test_utils.modules()
    return {}


def _module(name: str, source):
    from types import ModuleType

    module = ModuleType(name)
    module.__dict__.update({k: v for k, v in vars(source).items() if not k.startswith("__")})
    return module


@contextmanager
def _standing_in(path: Path | None) -> Iterator[None]:
    stand_ins = _stand_ins(path) if path is not None and path.is_relative_to(PEERS) else {}
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """While a peer file is imported (its collection), its repository's names resolve to the stand-ins."""
    with _standing_in(getattr(collector, "path", None) if isinstance(collector, pytest.Module) else None):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item):
    """And while one of its tests runs: some import inside a fixture or a test (vLLM's LoRA download, its envs)."""
    with _standing_in(getattr(item, "path", None)):
        yield


def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object):
    """In SGLang's files, only unittest classes are tests (SGLang runs them with unittest): a mixin of test
    methods that a file imports (its JSON kit's) is not collected on its own."""
    path = getattr(collector, "path", None)
    if (path is not None and path.is_relative_to(PEERS / "sglang") and inspect.isclass(obj)
            and not issubclass(obj, unittest.TestCase)):
        return []
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        reason = expected_failures.reason_for(item.nodeid)
        if reason and reason.startswith(expected_failures.LORA) and launch.lora_supported():
            reason = None  # LoRA has landed: those tests run against a tiny local adapter (no_hub_downloads)
        if reason:
            # A test that needs a real model's output cannot start passing on a random one: not run, to save time.
            run = not reason.startswith(expected_failures.REAL_MODEL)
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True, run=run))


@pytest.fixture(scope="session", autouse=True)
def peer_launcher(tiny_model_dir: Path, server_logs: Path) -> Iterator[None]:
    launch.SETTINGS.tiny_model_dir = tiny_model_dir
    launch.SETTINGS.log_dir = server_logs
    yield
    sglang_test_utils.stop_all()


# Each suite's context window: room for its largest max_tokens and prompt, and no more (see launch.py).
CONTEXT_CAPS = {
    "vllm/chat_completion/test_chat.py": 1280,  # max_completion_tokens=1000 with a schema in the prompt
    # 1000, the tools in the prompt; test_named_tool_use sends its first answer (up to 1000 tokens) back
    "vllm/chat_completion/test_completion_with_function_calling.py": 2560,
    "sglang/function_call": 2560,  # max_tokens=2048, the tools in the prompt
    "vllm/basic": 10100,  # its cancellation test asks 10,000 tokens (it cancels them; nothing runs that long)
}
DEFAULT_CONTEXT_CAP = 512  # the other suites ask at most 128 tokens


@pytest.fixture(scope="module", autouse=True)
def peer_context_cap(request: pytest.FixtureRequest) -> None:
    relative = Path(request.module.__file__).resolve().relative_to(PEERS).as_posix()
    launch.SETTINGS.context_cap = next((cap for prefix, cap in CONTEXT_CAPS.items() if relative.startswith(prefix)),
                                       DEFAULT_CONTEXT_CAP)


@pytest.fixture(scope="module", autouse=True)
def no_hub_downloads(monkeypatch_module: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """vLLM's LoRA fixtures download an adapter; here the download returns a tiny random adapter for the tiny
    model, built locally (while LoRA is pending: an empty folder, the `--lora-modules` flag it feeds is dropped
    and the LoRA tests are expected failures)."""
    import huggingface_hub

    folder = tmp_path_factory.mktemp("peer-adapter")
    if launch.lora_supported():
        from tests.lora_adapters import write_adapter

        write_adapter(folder, launch.SETTINGS.model_dir_for("any"))
    monkeypatch_module.setattr(huggingface_hub, "snapshot_download", lambda *args, **kwargs: str(folder))


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


# vLLM's shared sample fixtures (their tests/conftest.py), the values their suites are written against.
@pytest.fixture
def sample_regex() -> str:
    return r"((25[0-5]|(2[0-4]|1\d|[1-9]|)\d)\.){3}(25[0-5]|(2[0-4]|1\d|[1-9]|)\d)"


@pytest.fixture
def sample_json_schema() -> dict:
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "skills": {"type": "array", "items": {"type": "string", "maxLength": 10}, "minItems": 3},
            "work_history": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"company": {"type": "string"}, "duration": {"type": "number"},
                                   "position": {"type": "string"}},
                    "required": ["company", "position"],
                },
            },
        },
        "required": ["name", "age", "skills", "work_history"],
    }


@pytest.fixture
def sample_structured_outputs_choices() -> list[str]:
    return ["Python", "Java", "JavaScript", "C++", "C#", "PHP", "TypeScript", "Ruby", "Swift", "Kotlin"]

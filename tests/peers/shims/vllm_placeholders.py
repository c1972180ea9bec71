"""Placeholders for the vLLM (and FastAPI) names the suites import at module level.

Only the tests that unit-test vLLM's own classes use them, and those are listed as expected failures; the
placeholders exist so the rest of each file can be imported. `get_tokenizer` is real: the served model's.
"""

from __future__ import annotations

from types import ModuleType


def server_version() -> str:
    """What vLLM's `__version__` stands for in its suite: the version the server under test reports."""
    from app.server import _package_version

    return _package_version()


class NotVllm:
    """Stands for a vLLM class: constructing it fails, as that test needs vLLM itself."""

    def __init__(self, *args, **kwargs) -> None:
        raise NotImplementedError("a vLLM internal; this test unit-tests vLLM, not an OpenAI server")


class EngineDeadError(Exception):
    pass


class VLLMValidationError(ValueError):
    pass


class _HubApi:
    """vLLM's `hf_api()` as its LoRA fixture uses it: a download, which the peer conftest answers locally."""

    def snapshot_download(self, *args, **kwargs) -> str:
        import huggingface_hub

        return huggingface_hub.snapshot_download(*args, **kwargs)


def get_tokenizer(tokenizer_name: str, *args, **kwargs):
    from transformers import AutoTokenizer

    from tests.peers.launch import SETTINGS

    return AutoTokenizer.from_pretrained(str(SETTINGS.model_dir_for(tokenizer_name)))


def modules() -> dict[str, ModuleType]:
    """Module name -> placeholder module, for the import of a vLLM suite file."""
    names = {
        "vllm": {},
        "vllm.entrypoints": {}, "vllm.entrypoints.openai": {}, "vllm.entrypoints.openai.chat_completion": {},
        "vllm.entrypoints.openai.chat_completion.protocol": {"ChatCompletionRequest": NotVllm,
                                                             "BatchChatCompletionRequest": NotVllm},
        "vllm.entrypoints.openai.completion": {},
        "vllm.entrypoints.openai.completion.protocol": {"CompletionRequest": NotVllm},
        "vllm.exceptions": {"VLLMValidationError": VLLMValidationError},
        "vllm.envs": {"VLLM_USE_RUST_FRONTEND": False},  # vLLM's process settings; only internals tests read more
        "vllm.transformers_utils": {}, "vllm.transformers_utils.repo_utils": {"hf_api": _HubApi},
        "vllm.sampling_params": {"SamplingParams": NotVllm},
        "vllm.tokenizers": {"get_tokenizer": get_tokenizer},
        "vllm.v1": {}, "vllm.v1.engine": {}, "vllm.v1.engine.exceptions": {"EngineDeadError": EngineDeadError},
        "vllm.version": {"__version__": server_version()},
        "fastapi": {"Request": NotVllm},
    }
    built = {}
    for name, attrs in names.items():
        module = ModuleType(name)
        module.__path__ = []  # a package, so submodules resolve through sys.modules
        module.__dict__.update(attrs)
        built[name] = module
    built["vllm"].envs = built["vllm.envs"]
    return built

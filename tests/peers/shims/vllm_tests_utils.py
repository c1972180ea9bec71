"""vLLM's `tests.utils` as its OpenAI-server suites use it: `RemoteOpenAIServer` starts our server instead."""

from __future__ import annotations

import openai

from tests.peers.launch import launch

ROCM_EXTRA_ARGS: list[str] = []
ROCM_ENV_OVERRIDES: dict[str, str] = {}


class RemoteOpenAIServer:
    """The parts of vLLM's class the suites call: a context manager, `url_for`, and SDK clients."""

    DUMMY_API_KEY = "token-abc123"  # vLLM's own placeholder; our server runs without keys here

    def __init__(self, model: str, vllm_serve_args: list[str], *, env_dict: dict[str, str] | None = None,
                 max_wait_seconds: float | None = None, **_ignored) -> None:
        self._server = launch(model, vllm_serve_args, timeout=max_wait_seconds or 180.0)
        self.host, self.port = "127.0.0.1", self._server.port

    def __enter__(self) -> RemoteOpenAIServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.stop()

    @property
    def url_root(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_for(self, *parts: str) -> str:
        return self.url_root + "/" + "/".join(parts)

    def get_client(self, **kwargs) -> openai.OpenAI:
        kwargs.setdefault("timeout", 600)
        return openai.OpenAI(base_url=self.url_for("v1"), api_key=self.DUMMY_API_KEY, max_retries=0, **kwargs)

    def get_async_client(self, **kwargs) -> openai.AsyncOpenAI:
        kwargs.setdefault("timeout", 600)
        return openai.AsyncOpenAI(base_url=self.url_for("v1"), api_key=self.DUMMY_API_KEY, max_retries=0,
                                  **kwargs)

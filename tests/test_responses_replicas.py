"""Two replicas sharing one Redis store (`--responses-store redis://…`, a real redis-server started here): a
response stored by one is continued and read through the other, and so is an Anthropic thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import MODEL_NAME
from tests.live_server import LiveServer, start_server
from tests.redis_server import redis_server


@pytest.fixture(scope="module")
def replicas(served_model_args: list[str], server_logs: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        started: list[LiveServer] = []
        try:
            for _ in range(2):
                started.append(start_server(*served_model_args, "--served-model-name", MODEL_NAME,
                                            "--context-length", "4096", "--responses-store", url,
                                            log_dir=server_logs))
            yield started[0], started[1]
        finally:
            for server in started:
                server.stop()


def test_a_response_continues_on_another_replica(replicas: tuple[LiveServer, LiveServer]) -> None:
    a, b = (openai.OpenAI(base_url=s.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)
            for s in replicas)
    first = a.responses.create(model=MODEL_NAME, input="Name a city.", max_output_tokens=4)
    assert b.responses.retrieve(first.id).output_text == first.output_text
    second = b.responses.create(model=MODEL_NAME, input="And another?", previous_response_id=first.id,
                                max_output_tokens=4)
    assert second.usage.input_tokens > first.usage.input_tokens
    assert a.responses.input_items.list(second.id).data[0].type == "message"
    b.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        a.responses.retrieve(first.id)


def test_an_anthropic_thread_continues_on_another_replica(replicas: tuple[LiveServer, LiveServer]) -> None:
    headers = {"anthropic-version": "2023-06-01"}
    a, b = replicas
    created = httpx.post(a.base_url + "/v1/messages", headers=headers, timeout=120, json={
        "model": "claude-x", "max_tokens": 4, "system": "Be brief.", "thread": {"type": "create"},
        "messages": [{"role": "user", "content": "Name a city."}]})
    assert created.status_code == 200, created.text
    continued = httpx.post(b.base_url + "/v1/messages", headers=headers, timeout=120, json={
        "model": "claude-x", "max_tokens": 4, "messages": [{"role": "user", "content": "And another?"}],
        "thread": {"type": "continue", "previous_message_id": created.json()["id"]}})
    assert continued.status_code == 200, continued.text
    assert continued.json()["usage"]["input_tokens"] + continued.json()["usage"]["cache_read_input_tokens"] > \
        created.json()["usage"]["input_tokens"] + created.json()["usage"]["cache_read_input_tokens"]

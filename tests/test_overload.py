"""--max-running-requests: a request beyond the limit gets 429 in the caller's dialect, and others go on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.conftest import MODEL_NAME
from tests.live_server import LiveServer, start_server


@pytest.fixture(scope="module")
def one_slot_server(served_model_args: list[str], server_logs: Path) -> Iterator[LiveServer]:
    s = start_server(*served_model_args, "--served-model-name", MODEL_NAME, "--max-running-requests", "1",
                     log_dir=server_logs)
    yield s
    s.stop()


def test_requests_beyond_the_limit_get_429(one_slot_server):
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "max_tokens": 3000, "ignore_eos": True}
    with httpx.stream("POST", one_slot_server.base_url + "/v1/chat/completions", json=body, timeout=60) as busy:
        lines = busy.iter_lines()  # kept: a dropped line iterator would close the connection
        next(lines)  # the one slot is taken
        oa = openai.OpenAI(base_url=one_slot_server.base_url + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.RateLimitError) as err:
            oa.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        assert err.value.body["type"] == "rate_limit_error"
        an = anthropic.Anthropic(base_url=one_slot_server.base_url, api_key="x", max_retries=0)
        with pytest.raises(anthropic.RateLimitError) as err:
            an.messages.create(model="claude-sonnet-4-5", max_tokens=2, messages=[{"role": "user", "content": "hi"}])
        assert err.value.body["error"]["type"] == "rate_limit_error"
    # The slot is free again once the stream is gone.
    oa = openai.OpenAI(base_url=one_slot_server.base_url + "/v1", api_key="x", max_retries=3)
    assert oa.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "hi"}],
                                      max_tokens=2).choices

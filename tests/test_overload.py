"""Admission (runtime/admission.py) on a real server with one generation slot and a one-place queue: a queued
request runs when the slot frees; a full queue or a wait that runs out is a 429 with Retry-After in the
caller's dialect; n beyond the slots is a 400; the queue's depth is in /metrics."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anthropic
import httpx
import openai
import pytest

from tests.conftest import MODEL_NAME
from tests.live_server import LiveServer, start_server

QUEUE_WAIT_S = 3.0
BUSY = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 3000,
        "ignore_eos": True}
SHORT = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def one_slot_server(served_model_args: list[str], server_logs) -> Iterator[LiveServer]:
    s = start_server(*served_model_args, "--served-model-name", MODEL_NAME, "--max-running-requests", "1",
                     "--max-queued-requests", "1", "--max-queue-wait", str(QUEUE_WAIT_S), log_dir=server_logs)
    yield s
    s.stop()


@contextmanager
def slot_taken(server: LiveServer) -> Iterator[None]:
    """A stream holds the one slot until the block ends."""
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json=BUSY, timeout=60) as busy:
        lines = busy.iter_lines()  # kept: a dropped line iterator would close the connection
        next(lines)
        yield


def in_background(call) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        started = time.monotonic()
        out["response"] = call()
        out["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def waiting(server: LiveServer) -> float:
    text = httpx.get(server.base_url + "/metrics").text
    return float(re.search(r"^inference_requests_waiting (\S+)$", text, re.M).group(1))


def until_queued(server: LiveServer) -> None:
    deadline = time.monotonic() + 10
    while waiting(server) < 1:
        assert time.monotonic() < deadline, "the request never queued"
        time.sleep(0.05)


def test_a_queued_request_runs_when_the_slot_frees(one_slot_server):
    url = one_slot_server.base_url + "/v1/chat/completions"
    with slot_taken(one_slot_server):
        thread, out = in_background(lambda: httpx.post(url, json=SHORT, timeout=60))
        until_queued(one_slot_server)
    thread.join()
    assert out["response"].status_code == 200, out["response"].text
    assert waiting(one_slot_server) == 0


def test_full_queue_and_long_wait_are_429_with_retry_after_in_both_dialects(one_slot_server):
    url = one_slot_server.base_url + "/v1/chat/completions"
    with slot_taken(one_slot_server):
        thread, out = in_background(lambda: httpx.post(url, json=SHORT, timeout=60))
        until_queued(one_slot_server)
        # The queue is full: answered at once.
        oa = openai.OpenAI(base_url=one_slot_server.base_url + "/v1", api_key="x", max_retries=0)
        started = time.monotonic()
        with pytest.raises(openai.RateLimitError) as err:
            oa.chat.completions.create(**SHORT)
        assert time.monotonic() - started < 2
        assert err.value.body["type"] == "rate_limit_error"
        assert int(err.value.response.headers["retry-after"]) >= 1
        an = anthropic.Anthropic(base_url=one_slot_server.base_url, api_key="x", max_retries=0)
        with pytest.raises(anthropic.RateLimitError) as err:
            an.messages.create(model="claude-sonnet-4-5", max_tokens=2, messages=[{"role": "user", "content": "hi"}])
        assert err.value.body["error"]["type"] == "rate_limit_error"
        assert int(err.value.response.headers["retry-after"]) >= 1
        # The queued one waited its bounded time, then got its 429 too.
        thread.join()
    assert out["response"].status_code == 429
    assert QUEUE_WAIT_S - 0.5 < out["seconds"] < QUEUE_WAIT_S + 5
    assert int(out["response"].headers["retry-after"]) >= 1
    assert out["response"].json()["error"]["type"] == "rate_limit_error"


def test_n_beyond_the_running_cap_is_400(one_slot_server):
    oa = openai.OpenAI(base_url=one_slot_server.base_url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        oa.chat.completions.create(**SHORT, n=2)
    assert err.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as err:
        oa.completions.create(model=MODEL_NAME, prompt="hi", max_tokens=2, n=2)
    assert err.value.body["param"] == "n"

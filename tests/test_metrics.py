"""GET /metrics: Prometheus text that moves with the traffic (read before and after, on the shared server)."""

from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MODEL_NAME


def scrape(server) -> dict[tuple[str, tuple], float]:
    r = httpx.get(server.base_url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def delta(before, after, name, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_a_generation_moves_the_counters_and_histograms(server, client):
    before = scrape(server)
    r = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "count"}],
                                       max_tokens=6, extra_body={"ignore_eos": True})
    stream = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "count"}],
                                            max_tokens=6, stream=True, extra_body={"ignore_eos": True})
    assert len([c for c in stream]) > 0
    after = scrape(server)
    assert delta(before, after, "inference_generations_total", finish_reason="length") == 2
    assert delta(before, after, "inference_generation_tokens_total") == 12
    assert delta(before, after, "inference_prompt_tokens_total") == 2 * r.usage.prompt_tokens
    assert delta(before, after, "inference_prompt_cached_tokens_total") >= r.usage.prompt_tokens - 1  # 2nd: cached
    for histogram in ("inference_time_to_first_token_seconds", "inference_e2e_request_latency_seconds",
                      "inference_time_per_output_token_seconds"):
        assert delta(before, after, histogram + "_count") == 2
        assert delta(before, after, histogram + "_sum") > 0
    assert after[("inference_requests_running", ())] == 0
    assert delta(before, after, "inference_http_responses_total", route="/v1/chat/completions", status="200") == 2


def test_errors_and_unknown_routes_are_counted_by_status(server, client):
    before = scrape(server)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL_NAME, messages=[], max_tokens=2)
    assert httpx.get(server.base_url + "/no/such/route").status_code == 404
    after = scrape(server)
    assert delta(before, after, "inference_http_responses_total", route="/v1/chat/completions", status="400") == 1
    assert delta(before, after, "inference_http_responses_total", route="other", status="404") == 1
    assert delta(before, after, "inference_generations_total", finish_reason="error") == 0  # never started


def test_metrics_need_no_api_key(auth_server):
    assert httpx.get(auth_server.base_url + "/metrics").status_code == 200
    assert httpx.get(auth_server.base_url + "/v1/models").status_code == 401


def test_a_client_that_leaves_counts_as_cancelled(server):
    import time

    before = scrape(server)
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "long"}], "max_tokens": 3000,
            "stream": True, "ignore_eos": True}
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json=body, timeout=60) as response:
        next(response.iter_bytes())  # the stream has started; leave
    deadline = time.monotonic() + 20
    while delta(before, after := scrape(server), "inference_generations_total", finish_reason="cancelled") < 1:
        assert time.monotonic() < deadline, "the abandoned generation was never counted"
        time.sleep(0.2)
    assert after[("inference_requests_running", ())] == 0

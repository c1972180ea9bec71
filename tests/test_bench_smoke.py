"""The bench CLI keeps working: a handful of requests per workload against real servers with the tiny
model. Figures are checked for presence and for exact lengths, never for speed."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from bench.cli import main
from bench.servers import serving
from bench.sse import SseDecoder

LATENCIES = ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms")


def run_cli(*argv: str) -> dict:
    output = main([*argv, "--no-progress"])
    document = json.loads(output.read_text())
    assert output.with_suffix(".png").stat().st_size > 0
    return document


def assert_figures(figures: dict, requests: int, *, visible_output: bool = True) -> None:
    assert figures["requests"] == requests
    assert figures["completed"] == requests, figures["error_samples"]
    assert figures["errors"] == {}
    for name in LATENCIES:
        assert set(figures[name]) >= {"mean", "p50", "p90", "p99"}
    assert figures["e2e_ms"]["p99"] is not None
    if visible_output:  # a tool call cut short before its name is complete shows nothing
        assert figures["ttft_ms"]["p50"] is not None
    assert figures["output_tokens_per_s"] > 0 and figures["requests_per_s"] > 0


def test_random_workload_sweeps_with_exact_lengths(server, tiny_model_dir: Path, tmp_path: Path):
    doc = run_cli("random", "--base-url", server.base_url, "--tokenizer", str(tiny_model_dir),
                  "--num-requests", "2", "--concurrency", "1,2", "--input-len", "40,80", "--output-len", "5",
                  "--warmup", "0", "--output", str(tmp_path / "random.json"))
    assert doc["target"]["model"] == "test-model"  # found through /v1/models
    assert [(r["params"]["input_len"], r["params"]["concurrency"]) for r in doc["runs"]] == [
        (40, 1), (40, 2), (80, 1), (80, 2)]
    for run in doc["runs"]:
        assert_figures(run["figures"], 2)
        assert run["figures"]["prompt_length_exact"] == 1.0  # the served tokenizer and template, counted alike
        assert run["figures"]["output_length_exact"] == 1.0  # ignore_eos + max_completion_tokens
        assert run["figures"]["total_output_tokens"] == 10
    assert (tmp_path / "random-ttft-vs-prompt.png").exists()


def test_agent_sessions_report_prefix_cache_hits(server, tiny_model_dir: Path, tmp_path: Path):
    doc = run_cli("agent", "--base-url", server.base_url, "--tokenizer", str(tiny_model_dir), "--sessions", "2",
                  "--turns", "2", "--concurrency", "2", "--system-tokens", "120", "--tool-result-tokens", "20",
                  "--output-len", "4", "--output", str(tmp_path / "agent.json"))
    (run,) = doc["runs"]
    assert_figures(run["figures"], 4)
    assert run["figures"]["cache_hit_ratio"] is not None
    assert set(run["cache_hit_by_turn"]) == {"0", "1"}


def test_tools_workload_reports_grammar_overhead(server, tiny_model_dir: Path, tmp_path: Path):
    doc = run_cli("tools", "--base-url", server.base_url, "--tokenizer", str(tiny_model_dir), "--num-requests", "2",
                  "--input-len", "40", "--output-len", "24", "--warmup", "0", "--output", str(tmp_path / "tools.json"))
    assert [r["params"]["variant"] for r in doc["runs"]] == ["required", "none", "no_tools"]
    for run in doc["runs"]:
        assert_figures(run["figures"], 2, visible_output=run["params"]["variant"] != "required")
    (overhead,) = doc["summary"]["grammar_overhead"].values()
    assert overhead["tool_call_rate"]["none"] == 0.0
    assert set(overhead["ratio_to_no_tools"]) == {"required", "none"}
    # The no-tools prompts are as long as the server's rendering of the prompts with tools.
    prompts = overhead["mean_prompt_tokens"]
    assert prompts["no_tools"] == prompts["none"] == prompts["required"] > 40


def test_frontend_compares_our_stack_with_raw_asgi(tiny_model_dir: Path, tmp_path: Path):
    doc = run_cli("frontend", "--model", str(tiny_model_dir), "--concurrency", "1,4", "--tokens", "4",
                  "--min-requests", "4", "--rounds", "1", "--output", str(tmp_path / "frontend.json"))
    assert len(doc["runs"]) == 8  # 2 levels x stream/non-stream x ours/raw
    for run in doc["runs"]:
        assert_figures(run["figures"], 4)
        if run["params"]["stream"]:
            assert run["figures"]["total_output_tokens"] == 16
    for level in doc["summary"]["levels"]:
        assert level["stream"]["ratio"] > 0 and level["non_stream"]["ratio"] > 0


def test_anthropic_client_against_raw_asgi(tiny_model_dir: Path, tmp_path: Path):
    with serving("raw", ["bench.raw_asgi"], log_dir=tmp_path) as raw:
        doc = run_cli("random", "--dialect", "anthropic", "--base-url", raw.base_url, "--tokenizer",
                      str(tiny_model_dir), "--num-requests", "3", "--input-len", "40", "--output-len", "6",
                      "--output", str(tmp_path / "anthropic.json"))
    (run,) = doc["runs"]
    assert_figures(run["figures"], 3)
    assert run["figures"]["output_length_exact"] == 1.0  # from message_delta usage
    assert run["figures"]["total_output_tokens"] == 18


def test_sglang_bench_serving_request_is_accepted(server):
    """The body `python -m sglang.bench_serving --backend sglang-oai-chat` posts (sglang 0.5.23,
    async_request_openai_chat_completions; --cache-report adds return_cached_tokens_details)."""
    payload = {"model": "test-model", "messages": [{"role": "user", "content": "Hello there"}],
               "max_completion_tokens": 7, "stream": True, "temperature": 0.0, "ignore_eos": True,
               "return_cached_tokens_details": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json=payload, timeout=60) as response:
        assert response.status_code == 200
        decoder = SseDecoder()
        events = [e for chunk in response.iter_bytes() for e in decoder.feed(chunk, 0.0)]
    assert events[-1].data == "[DONE]"
    usage = json.loads(events[-2].data)["usage"]
    assert usage["completion_tokens"] == 7


def test_sse_decoder_handles_split_reads():
    decoder = SseDecoder()
    assert decoder.feed(b"event: ping\nda", 1.0) == []
    events = decoder.feed(b"ta: {}\n\n: keep-alive\n\ndata: a\r\ndata: b\n\ndata: tail", 2.0)
    assert [(e.event, e.data, e.arrived) for e in events] == [("ping", "{}", 2.0), (None, "a\nb", 2.0)]
    assert [e.data for e in decoder.close(3.0)] == ["tail"]


def test_compare_charts_throughput_and_tpot_against_concurrency(tmp_path: Path):
    results = Path(__file__).resolve().parent.parent / "bench" / "results"
    files = [str(results / f"{name}.json") for name in ("native-t1-c1-run2", "native-t1-c4-c16-run2", "transformers-t1-c1")]
    main(["compare", *files, "--chart", str(tmp_path / "concurrency.png")])
    assert (tmp_path / "concurrency.png").stat().st_size > 10_000

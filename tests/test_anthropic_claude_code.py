"""Claude Code against the service: requests shaped like the CLI's (streamed and not, prefix-cache friendly
despite the billing header), and the real CLI (npm package @anthropic-ai/claude-code) running one turn.

The server here runs the terse variant of the tiny model (tests/claude_code/terse_model.py), which ends its
turns after a few tokens, with a window big enough for the CLI's ~29k-token prompt.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import jsonschema
import pytest

from tests.claude_code import cli, sse
from tests.claude_code import request as claude_code
from tests.conftest import MODEL_NAME
from tests.live_server import LiveServer, start_server

KEY = "sk-claude-code-test"
CLAUDE_HEADERS = {
    "authorization": f"Bearer {KEY}",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,"
                      "context-management-2025-06-27,mid-conversation-system-2026-04-07,effort-2025-11-24",
    "x-app": "cli",
    "user-agent": "claude-cli/2.1.197 (external, sdk-cli)",
    "x-claude-code-session-id": "6f0f5e3c-0000-4000-8000-000000000000",
}
SCHEMAS = {t["name"]: t["input_schema"] for t in claude_code.tools()}


@pytest.fixture(scope="module")
def claude_server(terse_model_dir: Path, server_logs: Path) -> Iterator[LiveServer]:
    s = start_server("--model", str(terse_model_dir), "--served-model-name", MODEL_NAME,
                     "--context-length", "131072", log_dir=server_logs, env={"INFER_API_KEYS": KEY})
    yield s
    s.stop()


def _post(server: LiveServer, body: dict) -> httpx.Response:
    response = httpx.post(server.base_url + "/v1/messages?beta=true", json=body, headers=CLAUDE_HEADERS, timeout=300)
    assert response.status_code == 200, response.text
    assert response.headers["request-id"].startswith("req_")
    return response


def _check_tool_uses(blocks: list[dict]) -> None:
    for block in blocks:
        if block["type"] == "tool_use" and block.get("input") is not None:
            jsonschema.validate(block["input"], SCHEMAS[block["name"]])


def test_claude_code_shaped_request(claude_server: LiveServer) -> None:
    body = claude_code.request()
    message = _post(claude_server, body).json()
    assert message["type"] == "message" and message["id"].startswith("msg_")
    assert message["model"] == body["model"]
    assert message["stop_reason"] in ("end_turn", "max_tokens", "tool_use")
    usage = message["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    _check_tool_uses(message["content"])
    counted = httpx.post(claude_server.base_url + "/v1/messages/count_tokens?beta=true", headers=CLAUDE_HEADERS,
                         json={k: v for k, v in body.items() if k not in ("max_tokens", "stream")}).json()
    assert usage["input_tokens"] + usage["cache_read_input_tokens"] == counted["input_tokens"]


def test_claude_code_shaped_stream(claude_server: LiveServer) -> None:
    response = _post(claude_server, claude_code.request(stream=True))
    transcript = sse.check(sse.parse(response.text))
    assert transcript.error is None
    assert transcript.delta["delta"]["stop_reason"] in ("end_turn", "max_tokens", "tool_use")
    _check_tool_uses(transcript.blocks)
    client = anthropic.Anthropic(base_url=claude_server.base_url, api_key=None, auth_token=KEY, max_retries=0,
                                 timeout=300)
    body = claude_code.request()
    del body["stream"]
    with client.beta.messages.stream(**body) as stream:
        final = stream.get_final_message()
    assert final.stop_reason in ("end_turn", "max_tokens", "tool_use") and final.usage.input_tokens > 0


def test_billing_header_does_not_defeat_prefix_caching(claude_server: LiveServer) -> None:
    """Two requests differing only in the billing header's per-request cch value share their whole prompt."""
    first = _post(claude_server, claude_code.request(cch="a1b2c")).json()["usage"]
    second = _post(claude_server, claude_code.request(cch="d4e5f")).json()["usage"]
    total = first["input_tokens"] + first["cache_read_input_tokens"]
    assert second["input_tokens"] + second["cache_read_input_tokens"] == total
    assert second["cache_read_input_tokens"] > 0.9 * total
    assert second["cache_creation_input_tokens"] == 0


# -- the real CLI ---------------------------------------------------------------------------------------

# Log lines carry the request id in brackets; the model name is logged quoted; the finish line names the
# engine's rid (the request id and the choice's index).
_STARTED = re.compile(r"\[(req_\w+)\]: '?([^',]+)'?, (\d+) prompt tokens, max_tokens (\d+)")
_FINISHED = re.compile(r"\[(req_\w+)\]: req_\w+-\d+: (\w+), (\d+) prompt tokens \((\d+) cached\), (\d+) output tokens")


@pytest.fixture(scope="module")
def claude_binary() -> Path:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed, so the Claude Code CLI (@anthropic-ai/claude-code) cannot be installed")
    return cli.install()


def test_claude_code_cli_one_turn(claude_binary: Path, claude_server: LiveServer, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`claude -p "say hi" --max-turns 1` finishes without an API error; a second turn in the same session
    (`--continue`) reuses the first one's prompt from the prefix cache."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    runs, results = [], []
    for prompt, continue_session in (("say hi", False), ("and again", True)):
        log_offset = len(claude_server.log())
        run = cli.run_print(claude_binary, prompt, base_url=claude_server.base_url, token=KEY, home=home, cwd=work,
                            max_output_tokens=256, timeout=240, continue_session=continue_session)
        log = claude_server.log()[log_offset:]
        detail = (f"exit {run.returncode}\nstdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-3000:]}\n"
                  f"server:\n{log[-3000:]}")
        started = _STARTED.findall(log)
        assert started, f"Claude Code sent no request to the server\n{detail}"
        assert "API Error" not in run.stdout, detail
        assert run.returncode == 0, detail
        result = run.result()
        assert result is not None and not result.get("is_error"), detail
        runs.append((started, {m[0]: m for m in _FINISHED.findall(log)}))
        results.append(result)

    (_, model, first_tokens, _), *_ = runs[0][0]
    assert model.startswith("claude-")
    lines = [f"Claude Code {cli.VERSION}: first request ({model}) {first_tokens} tokens with the test model's tokenizer"]
    windows = {name: usage.get("contextWindow") for name, usage in (results[0].get("modelUsage") or {}).items()}
    lines.append(f"context window Claude Code assumed: {windows}")
    second_rid = runs[1][0][0][0]
    # The server logs a request's finish line as its stream ends, which may trail the CLI's exit a little.
    deadline = time.monotonic() + 10
    while not (finished := [m for m in _FINISHED.findall(claude_server.log()) if m[0] == second_rid]):
        assert time.monotonic() < deadline, f"no finish line for the second turn's request {second_rid} in the log"
        time.sleep(0.1)
    _, _, prompt_tokens, cached, _ = finished[0]
    share = int(cached) / int(prompt_tokens)
    lines.append(f"second turn (--continue): {prompt_tokens} tokens, {cached} from the prefix cache ({share:.1%})")
    assert int(cached) > 0
    with capsys.disabled():
        print("\n" + "\n".join(lines))


def test_claude_code_cli_tool_search(claude_binary: Path, tiny_model_dir: Path, server_logs: Path,
                                     tmp_path: Path) -> None:
    """`ENABLE_TOOL_SEARCH=true`: Claude Code 2.1.197 leaves its deferred tools (WebFetch, WebSearch, the Task*
    and Cron* tools...) out of `tools`, names them in a reminder, and offers ToolSearch. Its answer to
    `select:WebFetch` is a tool_result holding a tool_reference block; the next request then carries WebFetch's
    definition, and the prompt the server renders for that turn must say, inside the tool result, which tool
    was loaded. The model is scripted (tests/claude_code/tool_search_engine.py; the tiny model never calls
    ToolSearch), so the call goes through the real grammar, call parser and stream encoder."""
    record = tmp_path / "prompts"
    server = start_server("--model", str(tiny_model_dir), "--served-model-name", MODEL_NAME,
                          "--context-length", "131072",
                          "--engine", "tests.claude_code.tool_search_engine:ToolSearchEngine",
                          "--engine-args", f"select=WebFetch,record_dir={record}",
                          log_dir=server_logs, env={"INFER_API_KEYS": KEY})
    try:
        home, work = tmp_path / "home", tmp_path / "work"
        home.mkdir()
        work.mkdir()
        run = cli.run_print(claude_binary, "fetch https://example.com", base_url=server.base_url, token=KEY,
                            home=home, cwd=work, max_output_tokens=256, timeout=240, max_turns=3,
                            extra_env={"ENABLE_TOOL_SEARCH": "true"})
        log = server.log()
    finally:
        server.stop()
    detail = (f"exit {run.returncode}\nstdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-2000:]}\n"
              f"server:\n{log[-3000:]}")
    assert run.returncode == 0, detail
    result = run.result()
    assert result is not None and not result.get("is_error") and result.get("result") == "Done.", detail

    # What the CLI did with the call: ToolSearch ran and answered with a tool_reference block.
    blocks = [block for r in run.records() if r.get("type") in ("assistant", "user")
              for block in r["message"]["content"] if isinstance(block, dict)]
    calls = [b for b in blocks if b["type"] == "tool_use"]
    assert [(c["name"], c["input"]) for c in calls] == [("ToolSearch", {"query": "select:WebFetch", "max_results": 1})]
    (tool_result,) = [b for b in blocks if b["type"] == "tool_result"]
    assert tool_result["tool_use_id"] == calls[0]["id"]
    assert tool_result["content"] == [{"type": "tool_reference", "tool_name": "WebFetch"}], detail

    # What the model was shown: the first prompt offers ToolSearch but not WebFetch's definition; the prompt of
    # the turn after the call has WebFetch's definition (the CLI loaded it) and names it in the tool result.
    prompts = [(record / f"{n}.txt").read_text() for n in range(len(list(record.glob("*.txt"))))]
    asked = [p for p in prompts if '"ToolSearch"' in p and "select:WebFetch" not in p]
    answered = [p for p in prompts if "select:WebFetch" in p]
    assert len(asked) == 1 and len(answered) == 1, f"{len(prompts)} prompts recorded\n{detail}"
    assert '"name": "WebFetch"' not in asked[0] and '"name": "WebFetch"' in answered[0]
    (after_call,) = answered
    call_at = after_call.index("select:WebFetch")
    assert "Tool loaded: WebFetch" in after_call[call_at:], after_call[call_at:]

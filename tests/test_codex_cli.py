"""The real Codex CLI (npm package @openai/codex, which speaks only the Responses API) against the service,
configured with a custom provider as CODEX_INTEGRATION.md shows, running one non-interactive turn (`codex exec`)
that calls its shell tool and then answers.

The server runs the agent variant of the tiny model (tests/codex/agent_model.py): it calls `exec_command` first
and answers once the tool's result is back, with a window big enough for Codex's ~13k-token prompt.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.codex import cli
from tests.codex.agent_model import build_agent_model
from tests.live_server import LiveServer, start_server

MODEL = "codex-test-model"


@pytest.fixture(scope="module")
def codex_binary() -> Path:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm is not installed, so the Codex CLI (@openai/codex) cannot be installed")
    return cli.install()


@pytest.fixture(scope="module")
def agent_server(tiny_model_dir: Path, server_logs: Path) -> Iterator[LiveServer]:
    model = build_agent_model(tiny_model_dir, tiny_model_dir.parent / "agent")
    s = start_server("--model", str(model), "--served-model-name", MODEL, "--context-length", "65536",
                     "--responses-store", ":memory:", log_dir=server_logs)
    yield s
    s.stop()


def test_codex_exec_runs_a_shell_tool_and_answers(codex_binary: Path, agent_server: LiveServer,
                                                   tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    run = cli.run_exec(codex_binary, "Run a command, then answer.", base_url=agent_server.base_url, model=MODEL,
                       home=tmp_path / "home", cwd=work, timeout=400)
    records = run.records()
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    completed = [r["item"] for r in records if r.get("type") == "item.completed"]
    commands = [item for item in completed if item["type"] == "command_execution"]
    answers = [item for item in completed if item["type"] == "agent_message"]
    assert len(commands) == 1 and commands[0]["command"].startswith("/bin/bash")
    assert answers and answers[-1]["text"]
    assert completed.index(commands[0]) < completed.index(answers[-1])
    turn = next(r for r in records if r.get("type") == "turn.completed")
    assert turn["usage"]["input_tokens"] > 0 and turn["usage"]["output_tokens"] > 0
    log = agent_server.log()
    assert log.count('"POST /v1/responses HTTP/1.1" 200') == 2  # the call, then the answer
    assert "ignoring the hosted tool 'web_search'" in log

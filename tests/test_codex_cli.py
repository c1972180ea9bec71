"""The real Codex CLI (npm package @openai/codex, which speaks only the Responses API) against the service,
configured with a custom provider as CODEX_INTEGRATION.md shows, running one non-interactive turn (`codex exec`)
that calls its shell tool and then answers.

The server runs the agent variant of the tiny model (tests/codex/agent_model.py): it calls `exec_command` first
and answers once the tool's result is back, with a window big enough for Codex's ~13k-token prompt.
"""

from __future__ import annotations

import shlex
import tempfile
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.codex import cli
from tests.codex.agent_model import build_agent_model
from tests.live_server import ROOT, LiveServer, start_server

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


def _documented_default_model_run(doc: str) -> tuple[list[str], str, str]:
    """CODEX_INTEGRATION.md's default-model recipe: the server's flags, the instructions and the config.toml."""
    section = doc[doc.index("## Trying it on a CPU with the default model"):]
    block = section[section.index("```bash\n") + 8: section.index("\n```", section.index("```bash\n"))]
    serve = block[: block.index("&\n")].replace("\\\n", " ")
    flags = shlex.split(serve)[1:]  # after scripts/serve
    echo = next(line for line in block.splitlines() if line.startswith("echo "))
    instructions = shlex.split(echo)[1]
    config = block[block.index("<<TOML\n") + 7: block.index("\nTOML\n")]
    return flags, instructions, config


def test_codex_exec_runs_its_shell_tool_on_the_default_model_as_documented(codex_binary: Path, server_logs: Path) -> None:
    """The recipe in CODEX_INTEGRATION.md, run as written (but for the port and paths) on the real default
    model: one Codex turn that runs `ls` through exec_command and then answers. The 135M model copies words of
    its context into the command (in a directory named after this test it ran the directory's name), so the
    run happens in a plainly named one, as a user's project would be."""
    with tempfile.TemporaryDirectory(prefix="codex-") as plain:
        _run_documented_default_model(codex_binary, server_logs, Path(plain))


def _run_documented_default_model(codex_binary: Path, server_logs: Path, tmp_path: Path) -> None:
    flags, instructions, config = _documented_default_model_run((ROOT / "CODEX_INTEGRATION.md").read_text())
    server = start_server(*flags, "--cache-dir", str(ROOT / ".cache" / "models"), log_dir=server_logs, timeout=600)
    try:
        home = tmp_path / "home"
        (home / ".codex").mkdir(parents=True)
        (home / ".codex" / "instructions.md").write_text(instructions + "\n")
        (home / ".codex" / "config.toml").write_text(
            config.replace("$HOME", str(home)).replace("http://127.0.0.1:8000", server.base_url))
        work = tmp_path / "project"
        work.mkdir()
        (work / "notes.txt").write_text("hello\n")
        run = cli.run_exec(codex_binary, "List the files here.", base_url=server.base_url, model="smollm2",
                           home=home, cwd=work, timeout=600, config=None)
    finally:
        server.stop()
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    completed = [r["item"] for r in run.records() if r.get("type") == "item.completed"]
    commands = [item for item in completed if item["type"] == "command_execution"]
    answers = [item for item in completed if item["type"] == "agent_message"]
    assert len(commands) == 1 and commands[0]["command"].startswith("/bin/bash -lc ls"), commands
    assert "notes.txt" in commands[0]["aggregated_output"], commands
    assert answers and answers[-1]["text"] and completed.index(commands[0]) < completed.index(answers[-1])

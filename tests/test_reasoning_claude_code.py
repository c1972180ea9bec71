"""The real Claude Code CLI against a reasoning model: its turns come back with signed thinking blocks, which
the CLI accepts, shows in its stream-json output and sends back on the next turn (`--continue`), where the
server recognises them as its own.

The model is the tiny model with DeepSeek R1's template and tokens, made terse (it closes its thinking and
ends its turn after a few tokens): R1's template opens the thinking in the prompt, and Claude Code's
`thinking: {"type": "adaptive"}` leaves thinking to the model, so each short answer starts with thinking.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.claude_code import cli
from tests.claude_code.terse_model import build_terse_model
from tests.live_server import LiveServer, start_server
from tests.reasoning_models import FAMILIES, build_family_model
from tests.test_anthropic_claude_code import _STARTED, KEY, claude_binary  # noqa: F401  (a fixture)

NOT_OURS = "a thinking block whose signature is not this server's"


@pytest.fixture(scope="module")
def thinking_server(tiny_model_dir: Path, server_logs: Path) -> Iterator[LiveServer]:
    # The family's tokens first, then the terse change, so that its end-of-turn token is the family's; the
    # thinking's close is favoured as much (the prompt's last token, a newline, carries nothing: the thinking
    # holds at least one token), since the grammar allows the end of turn only once the thinking has closed.
    family = build_family_model(tiny_model_dir, tiny_model_dir.parent / "reasoning-deepseek_r1", "deepseek_r1")
    stops = (FAMILIES["deepseek_r1"].eos[0], "</think>")
    model = build_terse_model(family, tiny_model_dir.parent / "terse-deepseek_r1-v2", stops)
    s = start_server("--model", str(model), "--served-model-name", "m", "--context-length", "131072",
                     log_dir=server_logs, env={"INFER_API_KEYS": KEY})
    yield s
    s.stop()


def test_claude_code_accepts_thinking_blocks_and_sends_them_back(claude_binary: Path,  # noqa: F811
                                                                 thinking_server: LiveServer, tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    for prompt, continue_session in (("say hi", False), ("and again", True)):
        offset = len(thinking_server.log())
        run = cli.run_print(claude_binary, prompt, base_url=thinking_server.base_url, token=KEY, home=home,
                            cwd=work, max_output_tokens=256, timeout=240, continue_session=continue_session)
        log = thinking_server.log()[offset:]
        detail = f"exit {run.returncode}\nstdout:\n{run.stdout[-3000:]}\nstderr:\n{run.stderr[-2000:]}\nserver:\n{log[-3000:]}"
        assert _STARTED.findall(log), f"Claude Code sent no request to the server\n{detail}"
        assert run.returncode == 0 and "API Error" not in run.stdout, detail
        result = run.result()
        assert result is not None and not result.get("is_error"), detail
        blocks = [block for record in run.records() if record.get("type") == "assistant"
                  for block in record["message"]["content"]]
        assert any(b["type"] == "thinking" and b.get("thinking") and b.get("signature") for b in blocks), detail
        assert NOT_OURS not in log, detail  # the blocks the CLI sent back carried this server's signatures

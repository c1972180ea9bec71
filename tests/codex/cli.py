"""The Codex CLI (npm package @openai/codex), installed with npm into the repository's gitignored .cache/codex,
and one non-interactive run of it (`codex exec`) against a server, configured as CODEX_INTEGRATION.md shows."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.claude_code.cli import Run
from tests.live_server import ROOT
from tests.npm import install_pinned

PACKAGE = "@openai/codex"
VERSION = "0.171.0"  # pinned, so a new release cannot change the test
PREFIX = ROOT / ".cache" / "codex"

CONFIG = """\
model = "{model}"
model_provider = "local"
approval_policy = "never"
sandbox_mode = "{sandbox}"

[model_providers.local]
name = "inference-service"
base_url = "{base_url}/v1"
wire_api = "responses"
env_key = "CODEX_TEST_API_KEY"
stream_max_retries = 0
request_max_retries = 0
stream_idle_timeout_ms = 1800000
"""


def install() -> Path:
    """The `codex` binary, installing the pinned version first where it is missing or another version."""
    return install_pinned(PREFIX, PACKAGE, VERSION, "codex")


def run_exec(binary: Path, prompt: str, *, base_url: str, model: str, home: Path, cwd: Path, timeout: float,
             sandbox: str = "read-only", config: str | None = CONFIG) -> Run:
    """`codex exec --json PROMPT` with a config.toml naming the server as a custom provider (`config`: its
    template; None: the config.toml already in `home`/.codex is used as it is)."""
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (codex_home / "config.toml").write_text(config.format(model=model, base_url=base_url, sandbox=sandbox))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
    env.update({"HOME": str(home), "CODEX_HOME": str(codex_home), "CODEX_TEST_API_KEY": "unused",
                "NO_COLOR": "1"})
    args = [str(binary), "exec", "--json", "--skip-git-repo-check", prompt]
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)

"""The Codex CLI (npm package @openai/codex), installed with npm into the repository's gitignored .cache/codex,
and one non-interactive run of it (`codex exec`) against a server, configured as CODEX_INTEGRATION.md shows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.live_server import ROOT

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
"""


def installed_binary() -> Path:
    return PREFIX / "node_modules" / ".bin" / "codex"


def install() -> Path:
    """The `codex` binary, installing the pinned version first where it is missing or another version."""
    manifest = PREFIX / "node_modules" / "@openai" / "codex" / "package.json"
    if installed_binary().exists() and manifest.exists() and json.loads(manifest.read_text())["version"] == VERSION:
        return installed_binary()
    npm = shutil.which("npm")
    assert npm is not None
    PREFIX.mkdir(parents=True, exist_ok=True)
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(PREFIX), f"{PACKAGE}@{VERSION}"],
                   check=True, capture_output=True, timeout=600)
    return installed_binary()


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def records(self) -> list[dict[str, Any]]:
        """The JSON Lines events `codex exec --json` prints."""
        out = []
        for line in self.stdout.splitlines():
            if line.strip().startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return out


def run_exec(binary: Path, prompt: str, *, base_url: str, model: str, home: Path, cwd: Path, timeout: float,
             sandbox: str = "read-only") -> Run:
    """`codex exec --json PROMPT` with a config.toml naming the server as a custom provider."""
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(CONFIG.format(model=model, base_url=base_url, sandbox=sandbox))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
    env.update({"HOME": str(home), "CODEX_HOME": str(codex_home), "CODEX_TEST_API_KEY": "unused",
                "NO_COLOR": "1"})
    args = [str(binary), "exec", "--json", "--skip-git-repo-check", prompt]
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)

"""The Claude Code CLI, installed with npm into the repository's gitignored .cache/npm, and one run of it."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.live_server import ROOT
from tests.npm import install_pinned

PACKAGE = "@anthropic-ai/claude-code"
VERSION = "2.1.197"  # the version the notes captured; pinned so a new release cannot change the test
PREFIX = ROOT / ".cache" / "npm"


def install() -> Path:
    """The `claude` binary, installing the pinned version first where it is missing or another version."""
    return install_pinned(PREFIX, PACKAGE, VERSION, "claude")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def records(self) -> list[dict[str, Any]]:
        """The JSON records on stdout (Claude Code's stream-json, codex exec --json's events)."""
        out = []
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return out

    def result(self) -> dict[str, Any] | None:
        results = [r for r in self.records() if r.get("type") == "result"]
        return results[-1] if results else None


def run_print(binary: Path, prompt: str, *, base_url: str, token: str, home: Path, cwd: Path,
              max_output_tokens: int, timeout: float, continue_session: bool = False, max_turns: int = 1,
              extra_env: dict[str, str] | None = None) -> Run:
    """One non-interactive run, `claude -p PROMPT --max-turns N` (one turn by default), with no tool
    permissions granted (tools that need none, such as ToolSearch, still run); with `continue_session`, in the
    most recent session of `cwd` (`--continue`); `extra_env` adds or overrides environment variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
    env.update({
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_AUTH_TOKEN": token,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        # As CLAUDE_CODE_INTEGRATION.md recommends. Without it 2.1.197 calls its model "claude-opus-4-8[1m]" in
        # the system prompt of a new session but not of a continued one, which changes the prompt's prefix.
        "CLAUDE_CODE_DISABLE_1M_CONTEXT": "1",
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(max_output_tokens),
        "DISABLE_AUTOUPDATER": "1",
        "API_TIMEOUT_MS": str(int(timeout * 1000)),
    })
    env.update(extra_env or {})
    args = [str(binary), "-p", prompt, "--max-turns", str(max_turns), "--output-format", "stream-json", "--verbose"]
    if continue_session:
        args.append("--continue")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)

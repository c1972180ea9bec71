"""docs/CLIENTS.md, executed: every block marked `<!-- run: KIND -->` runs against a live server with the
client versions pinned here, installed into the gitignored .cache/clients (a venv of its own, so the clients'
dependencies never touch the service's pinned ones; npm packages beside it)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TERSE_MODEL_NAME
from tests.live_server import ROOT, LiveServer

DOC = ROOT / "docs" / "CLIENTS.md"
CACHE = ROOT / ".cache" / "clients"
PYTHON_CLIENTS = ["openai==3.57.0", "anthropic==2.15.0", "langchain-openai==1.7.4", "litellm==1.110.2",
                  "openai-agents==0.24.0"]
NODE_CLIENTS = ["openai@7.59.0", "@anthropic-ai/sdk@1.15.0", "ai@7.0.173", "@ai-sdk/openai-compatible@3.0.92",
                "@ai-sdk/anthropic@4.0.105", "zod@4.6.7"]
DOC_URL, DOC_MODEL = "http://127.0.0.1:8000", "smollm2-135m-instruct"

BLOCKS = re.findall(r"<!-- run: (\w+) -->\n```\w*\n(.*?)```", DOC.read_text(), re.S)


def _python() -> Path:
    venv = CACHE / "venv"
    stamp = venv / ("installed-" + "-".join(PYTHON_CLIENTS).replace("/", "_").replace("*", "x"))
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *PYTHON_CLIENTS], check=True, capture_output=True, timeout=900)
        stamp.touch()
    return venv / "bin" / "python"


def _node_dir() -> Path:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node and npm are not installed")
    npm = CACHE / "npm"
    stamp = npm / ("installed-" + "-".join(NODE_CLIENTS).replace("/", "_").replace("@", ""))
    if not stamp.exists():
        npm.mkdir(parents=True, exist_ok=True)
        (npm / "package.json").write_text('{"type": "module", "private": true}\n')
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", *NODE_CLIENTS], cwd=npm,
                       check=True, capture_output=True, timeout=900)
        stamp.touch()
    return npm


def test_the_doc_has_runnable_blocks() -> None:
    kinds = [kind for kind, _ in BLOCKS]
    assert kinds.count("python") >= 5 and kinds.count("node") >= 4 and "sh" in kinds


@pytest.mark.parametrize("kind,code", BLOCKS, ids=[f"{i}-{kind}" for i, (kind, _) in enumerate(BLOCKS)])
def test_snippet_runs(kind: str, code: str, terse_server: LiveServer, tmp_path: Path) -> None:
    code = code.replace(DOC_URL, terse_server.base_url).replace(DOC_MODEL, TERSE_MODEL_NAME)
    if kind == "python":
        cmd, cwd = [str(_python()), "-c", code], tmp_path
    elif kind == "node":
        cwd = _node_dir()
        script = cwd / f"snippet-{tmp_path.name}.mjs"
        script.write_text(code)
        cmd = ["node", script.name]
    else:
        if shutil.which("curl") is None:
            pytest.skip("curl is not installed")
        cmd, cwd = ["sh", "-c", code], tmp_path
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), "a snippet prints what it got"

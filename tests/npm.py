"""CLIs from npm, installed at a pinned version into a gitignored folder of the repository's .cache."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path


def install_pinned(prefix: Path, package: str, version: str, binary: str) -> Path:
    """`binary` of `package`, installing `version` into `prefix` first where it is missing or another version."""
    installed = prefix / "node_modules" / ".bin" / binary
    manifest = prefix / "node_modules" / package / "package.json"
    if installed.exists() and manifest.exists() and json.loads(manifest.read_text())["version"] == version:
        return installed
    npm = shutil.which("npm")
    assert npm is not None
    prefix.mkdir(parents=True, exist_ok=True)
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), f"{package}@{version}"],
                   check=True, capture_output=True, timeout=600)
    return installed

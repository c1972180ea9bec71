"""The `openai` npm package (the API guide's TypeScript client) streams a tool call from the test server."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import MODEL_NAME
from tests.live_server import ROOT

TS_DIR = ROOT / "tests" / "typescript"
CACHE = ROOT / ".cache" / "ts-client"  # node_modules lives here, outside the source tree


@pytest.fixture(scope="module")
def ts_client() -> list[str]:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node and npm are not installed")
    CACHE.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "stream_tool_call.ts"):
        shutil.copy(TS_DIR / name, CACHE / name)
    if not (CACHE / "node_modules" / "openai").exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=CACHE, check=True, timeout=300)
    return [str(CACHE / "node_modules" / ".bin" / "tsx"), str(CACHE / "stream_tool_call.ts")]


def test_typescript_client_streams_a_valid_tool_call(server, ts_client):
    # The random model can run out of max_tokens inside a call; a few seeds make a finished call certain.
    for seed in range(5):
        out = subprocess.run([*ts_client, server.base_url + "/v1", MODEL_NAME, str(seed)], capture_output=True,
                             text=True, timeout=120, cwd=CACHE)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if result["finish"] != "length":
            break
    assert result["finish"] == "tool_calls"
    call = result["calls"][0]
    assert call["id"].startswith("call_") and call["name"] == "get_user_info"
    assert isinstance(call["parsed"]["user_id"], str) and len(call["parsed"]["user_id"]) <= 12

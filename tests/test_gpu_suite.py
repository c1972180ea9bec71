"""On a GPU machine: the API suites again, against a real SGLang engine (skipped elsewhere, with the reason).

    pip install -e '.[gpu]'
    INFER_TEST_MODEL=/models/Qwen2.5-0.5B-Instruct pytest -m gpu
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.live_server import ROOT

SUITES = ["test_openai_api.py", "test_tools_api.py", "test_api_guide.py", "test_anthropic*.py"]


@pytest.mark.gpu
def test_api_suites_on_sglang():
    model = os.environ.get("INFER_TEST_MODEL")
    if not model:
        pytest.skip("set INFER_TEST_MODEL to a local directory of a small instruct model")
    env = {**os.environ, "INFER_TEST_ENGINE": "sglang", "INFER_TEST_MODEL": model}
    suites = sorted(str(p.relative_to(ROOT)) for pattern in SUITES for p in (ROOT / "tests").glob(pattern))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not gpu", *suites], cwd=ROOT, env=env)
    assert result.returncode == 0

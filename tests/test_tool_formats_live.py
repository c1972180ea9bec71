"""Every tool-call format end to end: a server per format (`--tool-format`) on the tiny random model, the
OpenAI SDK as client. The grammar, the engine's masks, the parser and both response shapes must agree for
each format's own syntax: every returned call validates, forced modes call, streamed and whole agree.
(Hermes, the tiny model's own format, has the 240-request suite in test_tools_api.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import MODEL_NAME
from tests.live_server import LiveServer, start_server
from tests.test_tools_api import TOOL_SETS, check, run

FORMATS = ["qwen3_coder", "llama3_json", "mistral", "mistral_v11"]
TOOLS = TOOL_SETS["refs+strings"]  # bounded strings: a forced call always fits the budget
# (tool_choice, parallel_tool_calls): every mode once, and one call at most once
CASES = [("required", None), ("required", False), ({"type": "function", "function": {"name": "strings"}}, None),
         ("auto", None), ("none", None)]


@pytest.fixture(scope="module", params=FORMATS)
def format_client(request: pytest.FixtureRequest, served_model_args: list[str],
                  server_logs: Path) -> Iterator[tuple[str, openai.OpenAI, LiveServer]]:
    server = start_server(*served_model_args, "--served-model-name", MODEL_NAME, "--tool-format", request.param,
                          log_dir=server_logs)
    try:
        yield request.param, openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0,
                                           timeout=120), server
    finally:
        server.stop()


def test_each_format_calls_validly_in_every_mode(format_client) -> None:
    name, client, server = format_client
    assert f"tool format {name}" in server.log()  # the setting took effect (the ready line names it)
    forced_calls = 0
    for choice, parallel in CASES:
        whole = run(client, TOOLS, choice, stream=False, parallel=parallel, seed=7)
        streamed = run(client, TOOLS, choice, stream=True, parallel=parallel, seed=7)
        for result in (whole, streamed):
            check(result, TOOLS, choice, parallel)
        # Same seed, same output: the streamed calls join into the whole response's (ids aside).
        assert [c[1:] for c in streamed[1][: len(whole[1])]] == [c[1:] for c in whole[1]], name
        assert streamed[2] == whole[2]
        if choice not in ("auto", "none"):
            forced_calls += len(whole[1])
    assert forced_calls >= 2, f"{name}: the forced requests returned {forced_calls} calls"


PATCH_GRAMMAR = 'start: "*** Begin Patch\\n" LINE+ "*** End Patch"\nLINE: /[+-][a-z "<\\/>]{1,8}\\n/'
PATCH = r'\*\*\* Begin Patch\n([+-][a-z "</>]{1,8}\n)+\*\*\* End Patch'


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_each_format_enforces_a_custom_tools_grammar(format_client, stream: bool) -> None:
    """A Responses `custom` tool (Codex's apply_patch) in each format's own call syntax: its input follows the
    Lark grammar (quotes, slashes and `<`, which the XML-ish formats write raw, included)."""
    name, client, _ = format_client
    custom = {"type": "custom", "name": "apply_patch", "description": "Apply a patch.",
              "format": {"type": "grammar", "syntax": "lark", "definition": PATCH_GRAMMAR}}
    kwargs = dict(model=MODEL_NAME, input="Patch it.", tools=[custom], max_output_tokens=200, store=False,
                  tool_choice={"type": "custom", "name": "apply_patch"})
    if stream:
        with client.responses.stream(**kwargs) as s:
            response = s.get_final_response()
    else:
        response = client.responses.create(**kwargs)
    calls = [item for item in response.output if item.type == "custom_tool_call"]
    assert response.status == "completed" and len(calls) == 1, (name, response.output)
    assert re.fullmatch(PATCH, calls[0].input), (name, calls[0].input)

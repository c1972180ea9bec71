"""The Responses API through other real clients: the openai-agents SDK on its default (Responses) path with a
function tool, and the openai npm package (`responses.create`, `responses.stream`). Client versions are the
ones tests/test_clients_doc.py pins and installs into .cache/clients."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import MODEL_NAME
from tests.live_server import LiveServer
from tests.test_clients_doc import _node_dir, _python
from tests.test_responses_api import WEATHER, responses_server  # noqa: F401  # the module's server fixture

AGENT = """
import asyncio, json, sys
from typing import Literal
from agents import Agent, ModelSettings, Runner, function_tool, set_default_openai_client, set_tracing_disabled
from openai import AsyncOpenAI

set_tracing_disabled(True)
set_default_openai_client(AsyncOpenAI(base_url=sys.argv[1] + "/v1", api_key="unused"), use_for_tracing=False)
calls = []

@function_tool
def get_weather(city: Literal["Paris", "London"]) -> str:  # bounded: a random model's call fits max_tokens
    \"\"\"Current weather for a city.\"\"\"
    calls.append(city)
    return "18 degrees, sunny"

agent = Agent(name="Assistant", instructions="Use the tool.", model=sys.argv[2], tools=[get_weather],
              model_settings=ModelSettings(tool_choice="required", max_tokens=200,
                                           parallel_tool_calls=False),  # exactly one call, grammar-enforced
              tool_use_behavior="stop_on_first_tool")
result = asyncio.run(Runner.run(agent, "What's the weather in Paris?"))
print(json.dumps({"final": result.final_output, "calls": calls,
                  "items": [item.type for item in result.new_items]}))
"""

NODE = """
import OpenAI from "openai";
const client = new OpenAI({ baseURL: process.argv[2] + "/v1", apiKey: "unused" });
const tool = { type: "function", name: "get_weather", description: "Current weather for a city.",
               parameters: JSON.parse(process.argv[4]), strict: true };
const created = await client.responses.create({ model: process.argv[3], input: "What's the weather in Paris?",
                                                tools: [tool], tool_choice: "required", max_output_tokens: 200 });
const stream = client.responses.stream({ model: process.argv[3], input: "Say hello.", max_output_tokens: 8 });
const types = [];
for await (const event of stream) types.push([event.type, event.sequence_number]);
const retrieved = await client.responses.retrieve(created.id);
console.log(JSON.stringify({ created, types, retrieved_id: retrieved.id }));
"""


def test_openai_agents_sdk_default_responses_path(responses_server: LiveServer, tmp_path: Path) -> None:  # noqa: F811
    done = subprocess.run([str(_python()), "-c", AGENT, responses_server.base_url, MODEL_NAME], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["final"] == "18 degrees, sunny" and len(out["calls"]) == 1
    assert out["items"] == ["tool_call_item", "tool_call_output_item"]
    assert "POST /v1/responses" in responses_server.log()


def test_openai_npm_package(responses_server: LiveServer) -> None:  # noqa: F811
    cwd = _node_dir()
    script = cwd / "responses-test.mjs"
    script.write_text(NODE)
    done = subprocess.run(["node", script.name, responses_server.base_url, MODEL_NAME, json.dumps(WEATHER)],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    call = next(item for item in out["created"]["output"] if item["type"] == "function_call")
    assert call["name"] == "get_weather" and set(json.loads(call["arguments"])) == {"city", "unit"}
    assert out["retrieved_id"] == out["created"]["id"]
    types = out["types"]
    assert [t for t, _ in types[:2]] == ["response.created", "response.in_progress"]
    assert [n for _, n in types] == list(range(len(types)))
    assert types[-1][0] in ("response.completed", "response.incomplete")

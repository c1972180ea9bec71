"""The real embedded default model (SmolLM2-135M-Instruct from PyPI) answers sensibly through the service."""

from __future__ import annotations

import json

import openai
import pytest

pytestmark = pytest.mark.slow

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city name"},
                           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def smol(default_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=default_server.base_url + "/v1", api_key="unused", max_retries=0, timeout=300)


def test_factual_question(smol):
    r = smol.chat.completions.create(model="smollm2-135m-instruct", temperature=0, max_tokens=30,
                                     messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert "Paris" in r.choices[0].message.content


def test_streaming_answer(smol):
    stream = smol.chat.completions.create(model="smollm2-135m-instruct", temperature=0, max_tokens=30, stream=True,
                                          messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert "Paris" in "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_weather_tool_call_names_paris(smol):
    r = smol.chat.completions.create(model="smollm2-135m-instruct", temperature=0, max_tokens=100,
                                     messages=[{"role": "user", "content": "What's the weather in Paris?"}],
                                     tools=[WEATHER_TOOL], tool_choice="required", parallel_tool_calls=False)
    calls = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls" and calls
    assert calls[0].function.name == "get_weather"
    assert "paris" in json.loads(calls[0].function.arguments)["city"].lower()

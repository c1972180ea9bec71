"""Request sets: random prompts of exact lengths, and the tool-call variants of the same prompts."""

from __future__ import annotations

import random
from dataclasses import replace

from bench.prompts import PromptBuilder
from bench.spec import ChatSpec, ToolChoice, ToolSpec, UserText


def random_requests(builder: PromptBuilder, *, input_len: int, output_len: int, count: int, seed: int,
                    temperature: float = 0.0, system: str | None = None) -> list[ChatSpec]:
    """`count` independent prompts rendering to exactly `input_len` tokens (`system` included, when given),
    each asking for exactly `output_len` tokens (ignore_eos with max_tokens)."""
    rng = random.Random(f"random-{seed}-{input_len}")
    specs = []
    for _ in range(count):
        text, actual = builder.user_prompt(input_len, rng, system=system)
        specs.append(ChatSpec((UserText(text),), max_tokens=output_len, system=system, expected_prompt_tokens=actual,
                              temperature=temperature))
    return specs


# Small, ordinary tools: the point is the grammar's cost per token, not schema coverage.
TOOLS = (
    ToolSpec("get_weather", "Get the current weather for a city.", {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 40},
                       "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"], "additionalProperties": False}),
    ToolSpec("search_web", "Search the web and return the top results.", {
        "type": "object",
        "properties": {"query": {"type": "string", "maxLength": 80},
                       "max_results": {"type": "integer", "minimum": 1, "maximum": 10}},
        "required": ["query"], "additionalProperties": False}),
    ToolSpec("read_file", "Read a file from the workspace.", {
        "type": "object",
        "properties": {"path": {"type": "string", "maxLength": 80},
                       "offset": {"type": "integer", "minimum": 0}},
        "required": ["path"], "additionalProperties": False}),
)

TOOL_VARIANTS = ("required", "none", "no_tools")


def with_tools(prompts: list[ChatSpec], tool_choice: ToolChoice) -> list[ChatSpec]:
    """The prompts with the tool list. `required` makes the grammar force a call; `none` renders the same
    tools but forbids calls (on our server that is a grammar too: any text without the call trigger)."""
    return [replace(p, tools=TOOLS, tool_choice=tool_choice, expected_prompt_tokens=None) for p in prompts]

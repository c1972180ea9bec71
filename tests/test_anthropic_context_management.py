"""Anthropic's context_management edits through the SDK: applied (and reported) or refused, never ignored."""

from __future__ import annotations

import anthropic
import pytest

from app.anthropic.signature import ThinkingSigner
from tests.conftest import THINKING_KEY
from tests.live_server import LiveServer

RESULT = "The weather in Paris is sunny with a light breeze and 21 degrees. " * 8


def _history(uses: int) -> list[dict]:
    messages: list[dict] = [{"role": "user", "content": "Check the weather a few times."}]
    for i in range(uses):
        messages.append({"role": "assistant", "content": [
            {"type": "thinking", "thinking": f"Checking again, attempt {i}.",
             "signature": ThinkingSigner.from_setting(THINKING_KEY).sign(f"Checking again, attempt {i}.")},
            {"type": "tool_use", "id": f"toolu_{i}", "name": "get_weather" if i else "get_time",
             "input": {"city": "Paris"}}]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}",
                                                      "content": RESULT}]})
    return messages


def _prompt_tokens(message) -> int:  # input_tokens leaves out what the prefix cache served
    return message.usage.input_tokens + message.usage.cache_read_input_tokens


def _clear(**edit) -> dict:
    return {"edits": [{"type": "clear_tool_uses_20250919", **edit}]}


@pytest.fixture()
def claude(server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0)


def test_clear_tool_uses_is_applied_and_reported(claude: anthropic.Anthropic) -> None:
    edits = _clear(trigger={"type": "tool_uses", "value": 2}, keep={"type": "tool_uses", "value": 1},
                   exclude_tools=["get_time"])
    plain = claude.messages.count_tokens(model="claude-x", messages=_history(4)).input_tokens
    counted = claude.beta.messages.count_tokens(model="claude-x", messages=_history(4), context_management=edits)
    assert counted.context_management.original_input_tokens == plain and counted.input_tokens < plain
    message = claude.beta.messages.create(model="claude-x", max_tokens=2, messages=_history(4),
                                          context_management=edits)
    [applied] = message.context_management.applied_edits
    # 4 uses, get_time's excluded, the last kept: 2 results cleared
    assert applied.type == "clear_tool_uses_20250919" and applied.cleared_tool_uses == 2
    assert applied.cleared_input_tokens == plain - counted.input_tokens
    assert _prompt_tokens(message) == counted.input_tokens
    with claude.beta.messages.stream(model="claude-x", max_tokens=2, messages=_history(4),
                                     context_management=edits) as stream:
        final = stream.get_final_message()
    assert final.context_management.applied_edits[0].cleared_tool_uses == 2


def test_untriggered_or_too_small_edits_change_nothing(claude: anthropic.Anthropic) -> None:
    plain = claude.messages.count_tokens(model="claude-x", messages=_history(3)).input_tokens
    for edits in (_clear(),  # default trigger: 100,000 input tokens
                  _clear(trigger={"type": "tool_uses", "value": 0}, clear_at_least={"type": "input_tokens",
                                                                                    "value": 100_000})):
        message = claude.beta.messages.create(model="claude-x", max_tokens=2, messages=_history(3),
                                              context_management=edits)
        assert message.context_management.applied_edits == [] and _prompt_tokens(message) == plain


def test_clear_thinking_is_applied(claude: anthropic.Anthropic) -> None:
    edits = {"edits": [{"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns", "value": 1}}]}
    message = claude.beta.messages.create(model="claude-x", max_tokens=2, messages=_history(3),
                                          context_management=edits)
    [applied] = message.context_management.applied_edits
    assert applied.type == "clear_thinking_20251015" and applied.cleared_thinking_turns == 2


def test_unsupported_edits_are_400(claude: anthropic.Anthropic) -> None:
    for edit, param in (({"type": "compact_20260112"}, "context_management.edits[0].type"),
                        ({"type": "clear_tool_uses_20250919", "keep": {"type": "input_tokens", "value": 3}},
                         "context_management.edits[0].keep.type")):
        with pytest.raises(anthropic.BadRequestError) as info:
            claude.beta.messages.create(model="claude-x", max_tokens=2, messages=_history(1),
                                        context_management={"edits": [edit]})
        assert param in info.value.message

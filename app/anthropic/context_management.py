"""Anthropic's `context_management` edits, applied to the conversation before it is rendered.

- `clear_tool_uses_20250919`: once the prompt passes `trigger` (input tokens, default 100,000, or a number of
  tool uses), the results of all but the last `keep` tool uses (default 3) are replaced by a placeholder, and
  with `clear_tool_inputs` their inputs too; `exclude_tools` are never cleared; when fewer than
  `clear_at_least` tokens would be cleared, nothing is.
- `clear_thinking_20251015`: the thinking of all but the last `keep` assistant turns (default 1; "all" keeps
  every turn's) is removed.
Any other edit type is a 400, never a silent no-op. What was applied is reported as Anthropic does:
`context_management.applied_edits` on a message, `original_input_tokens` on count_tokens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from app.decoding import error_param, without_path
from runtime.errors import InvalidRequest
from runtime.types import ChatRequest, Message

CLEARED_RESULT = "[Tool result cleared to save context]"
CLEAR_TOOL_USES = "clear_tool_uses_20250919"
CLEAR_THINKING = "clear_thinking_20251015"

Count = Annotated[int, Meta(ge=0)]


class Threshold(Struct):
    type: str
    value: Count


class ClearToolUses(Struct, tag=CLEAR_TOOL_USES, tag_field="type", forbid_unknown_fields=False):
    trigger: Threshold | None = None
    keep: Threshold | None = None
    clear_at_least: Threshold | None = None
    exclude_tools: list[str] | None = None
    clear_tool_inputs: bool | list[str] | None = None


class ThinkingTurns(Struct):
    type: Literal["thinking_turns", "all"]
    value: Count = 0


class ClearThinking(Struct, tag=CLEAR_THINKING, tag_field="type"):
    keep: ThinkingTurns | Literal["all"] | None = None


class EditHead(Struct):
    type: str


class ContextManagement(Struct):
    edits: list[msgspec.Raw] = []


_head = msgspec.json.Decoder(EditHead)
_edit = msgspec.json.Decoder(ClearToolUses | ClearThinking)
Edit = ClearToolUses | ClearThinking
Counter = Callable[[ChatRequest], Awaitable[int]]


def parse(config: ContextManagement | None) -> list[Edit]:
    edits: list[Edit] = []
    for i, raw in enumerate(config.edits if config is not None else ()):
        param = f"context_management.edits[{i}]"
        try:
            head = _head.decode(raw)
            if head.type not in (CLEAR_TOOL_USES, CLEAR_THINKING):
                raise InvalidRequest(f"Context management edit {head.type!r} is not supported by this server; "
                                     f"it applies {CLEAR_TOOL_USES} and {CLEAR_THINKING}.", param=f"{param}.type")
            edit = _edit.decode(raw)
        except msgspec.ValidationError as exc:
            sub = error_param(str(exc))
            raise InvalidRequest(f"Invalid context management edit: {without_path(str(exc))}",
                                 param=f"{param}.{sub}" if sub else param) from None
        if isinstance(edit, ClearToolUses):
            _expect(edit.trigger, ("input_tokens", "tool_uses"), f"{param}.trigger")
            _expect(edit.keep, ("tool_uses",), f"{param}.keep")
            _expect(edit.clear_at_least, ("input_tokens",), f"{param}.clear_at_least")
        edits.append(edit)
    return edits


def _expect(threshold: Threshold | None, kinds: tuple[str, ...], param: str) -> None:
    if threshold is not None and threshold.type not in kinds:
        raise InvalidRequest(f"{threshold.type!r} is not one of {', '.join(kinds)}.", param=f"{param}.type")


async def apply(chat: ChatRequest, edits: list[Edit], count: Counter) -> tuple[ChatRequest, list[dict[str, Any]]]:
    """The conversation with `edits` applied in order, and the applied_edits to report (one entry per edit
    that changed something)."""
    applied: list[dict[str, Any]] = []
    for edit in edits:
        before = await count(chat)
        if isinstance(edit, ClearThinking):
            edited, turns = _clear_thinking(chat.messages, edit)
            if turns:
                after = await count(replace(chat, messages=edited))
                applied.append({"type": CLEAR_THINKING, "cleared_thinking_turns": turns,
                                "cleared_input_tokens": max(0, before - after)})
                chat = replace(chat, messages=edited)
            continue
        if not _triggered(chat.messages, edit, before):
            continue
        edited, uses = _clear_tool_uses(chat.messages, edit)
        if not uses:
            continue
        after = await count(replace(chat, messages=edited))
        least = edit.clear_at_least.value if edit.clear_at_least is not None else 0
        if before - after < least:
            continue
        applied.append({"type": CLEAR_TOOL_USES, "cleared_tool_uses": uses,
                        "cleared_input_tokens": max(0, before - after)})
        chat = replace(chat, messages=edited)
    return chat, applied


def _triggered(messages: tuple[Message, ...], edit: ClearToolUses, input_tokens: int) -> bool:
    trigger = edit.trigger or Threshold("input_tokens", 100_000)  # Anthropic's default
    if trigger.type == "tool_uses":
        return sum(len(m.tool_calls) for m in messages) > trigger.value
    return input_tokens > trigger.value


def _clear_tool_uses(messages: tuple[Message, ...], edit: ClearToolUses) -> tuple[tuple[Message, ...], int]:
    keep = edit.keep.value if edit.keep is not None else 3
    excluded = set(edit.exclude_tools or ())
    calls = [call for m in messages for call in m.tool_calls if call.name not in excluded]
    targets = {call.id for call in (calls[:-keep] if keep else calls)}
    inputs = edit.clear_tool_inputs
    clear_input = (lambda name: bool(inputs)) if not isinstance(inputs, list) else (lambda name: name in inputs)
    cleared: set[str] = set()
    out: list[Message] = []
    for m in messages:
        if m.role == "tool" and m.tool_call_id in targets and m.content != CLEARED_RESULT:
            cleared.add(m.tool_call_id)
            m = replace(m, content=CLEARED_RESULT)
        elif m.tool_calls and any(c.id in targets and clear_input(c.name) and c.arguments for c in m.tool_calls):
            m = replace(m, tool_calls=tuple(replace(c, arguments={}) if c.id in targets and clear_input(c.name)
                                            else c for c in m.tool_calls))
        out.append(m)
    return tuple(out), len(cleared)


def _clear_thinking(messages: tuple[Message, ...], edit: ClearThinking) -> tuple[tuple[Message, ...], int]:
    keep = edit.keep
    if keep == "all" or (isinstance(keep, ThinkingTurns) and keep.type == "all"):
        return messages, 0
    turns = keep.value if isinstance(keep, ThinkingTurns) else 1  # Anthropic's default: the last turn's
    thinking = [i for i, m in enumerate(messages) if m.role == "assistant" and m.reasoning]
    targets = set(thinking[:-turns] if turns else thinking)
    edited = tuple(replace(m, reasoning=None) if i in targets else m for i, m in enumerate(messages))
    return edited, len(targets)

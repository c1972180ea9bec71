"""What every tool-call format provides, and the streaming parser they share.

A format describes calls as tagged regions of the model's output: a trigger string that opens a call, a
per-tool `begin` (which names the tool), the arguments JSON, and an `end`. The grammar (an xgrammar
structural tag, which SGLang accepts unchanged) makes these the only way a call can appear, so the parser
can rely on the exact strings instead of guessing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

from runtime.stops import partial_suffix
from runtime.types import TextDelta, Tool, ToolCall, ToolCallArgs, ToolCallStart, ToolChoice

ParsedEvent = TextDelta | ToolCallStart | ToolCallArgs


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class CallTag:
    """How one tool's call is written: `begin`, then the arguments JSON object, then `end`."""

    name: str
    begin: str
    end: str


class CallParser(Protocol):
    """Incremental parser of one response's output: text and calls as events."""

    @property
    def calls(self) -> int:
        """How many calls have been completed so far."""
        ...

    @property
    def in_call(self) -> bool:
        """True while a call has started but not ended."""
        ...

    def feed(self, text: str) -> Iterator[ParsedEvent]: ...

    def finish(self, cut_off: bool = False) -> Iterator[ParsedEvent]:
        """End of output. Text held back as the possible start of a call is released as text, unless
        `cut_off` (max_tokens ended the output): then it is an unfinished trigger, and no text at all."""
        ...


class ToolFormat(Protocol):
    name: str
    # True where the call markers are special tokens (Mistral's [TOOL_CALLS], Llama's <|python_tag|>):
    # the output must then be detokenized with special tokens kept, or the parser never sees a call.
    keeps_special_tokens: bool

    def parser(self, tools: tuple[Tool, ...]) -> CallParser: ...

    def structural_tag(self, tools: tuple[Tool, ...], schemas: dict[str, Any], choice: ToolChoice,
                       text_schema: dict[str, Any] | None) -> dict[str, Any]:
        """The xgrammar structural tag (as a JSON-able dict) enforcing `choice` over `tools`.
        `schemas` maps tool names to their (relaxed) parameter schemas; `text_schema`, when set, is a
        response_format schema that non-call output must follow."""
        ...

    def render_calls(self, calls: tuple[ToolCall, ...]) -> str:
        """Assistant calls as the model writes them (for templates that cannot render tool_calls)."""
        ...

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        """Tool instructions for templates that cannot render tools."""
        ...

    def render_tool_result(self, content: str) -> str:
        """A tool result as text in a user turn (for templates without a tool role)."""
        ...


class OnlyCalls:
    """The parser for a forced call (tool_choice required / named, Anthropic's `any` / `tool`): the grammar
    makes the whole output call syntax, so none of it is text, however it is cut."""

    def __init__(self, parser: CallParser) -> None:
        self._parser = parser

    @property
    def calls(self) -> int:
        return self._parser.calls

    @property
    def in_call(self) -> bool:
        return self._parser.in_call

    def feed(self, text: str) -> Iterator[ParsedEvent]:
        return (e for e in self._parser.feed(text) if not isinstance(e, TextDelta))

    def finish(self, cut_off: bool = False) -> Iterator[ParsedEvent]:
        return (e for e in self._parser.finish(cut_off) if not isinstance(e, TextDelta))


def text_event(text: str, calls: int) -> TextDelta | None:
    """Text outside calls as an event, or None when there is none: whitespace after a call is formatting
    between calls, not content."""
    if not text or (calls and not text.strip()):
        return None
    return TextDelta(text)


CONTINUE = object()  # what a parser's step returns when it consumed text but has no event to send


def run_steps(step: Callable[[], "ParsedEvent | object | None"]) -> Iterator[ParsedEvent]:
    """Drive a state-machine parser over its buffer: `step()` runs the current state's step, which returns an
    event, CONTINUE, or None when it needs more text."""
    while True:
        event = step()
        if event is None:
            return
        if event is not CONTINUE:
            yield event  # type: ignore[misc]


def split_at_trigger(buffer: str, triggers: Sequence[str], calls: int) -> tuple[str, str, bool]:
    """(text to emit now, what stays buffered, whether the buffer now starts at a trigger). Text that may be
    the start of a trigger is held back, and so is whitespace after a call: it is content only if text
    follows."""
    found = [at for t in triggers if (at := buffer.find(t)) >= 0]
    if found:
        at = min(found)
        return buffer[:at], buffer[at:], True
    keep = max(partial_suffix(buffer, t) for t in triggers)
    out = buffer[: len(buffer) - keep]
    if not out or (calls and not out.strip()):
        return "", buffer, False
    return out, buffer[len(out):], False


class JsonStringEscaper:
    """Escapes raw control characters inside JSON strings, streaming.

    xgrammar 0.2.7's JSON grammar admits raw control characters (U+0000-U+001F) inside strings, which
    strict JSON parsers (Python's json, JavaScript's JSON.parse) reject. Rewriting each as a \\u00XX escape,
    character by character, keeps the value and its length, and works the same on any split of the text,
    so streamed fragments still join into exactly the non-streamed JSON."""

    def __init__(self) -> None:
        self._in_string = False
        self._escaped = False

    @property
    def in_string(self) -> bool:
        return self._in_string

    def char(self, ch: str) -> str:
        """One more character, escaped if it is a raw control character inside a string."""
        if self._in_string:
            if self._escaped:
                self._escaped = False
            elif ch == "\\":
                self._escaped = True
            elif ch == '"':
                self._in_string = False
            elif ch < " ":
                return f"\\u{ord(ch):04x}"
        elif ch == '"':
            self._in_string = True
        return ch

    def __call__(self, text: str) -> str:
        return "".join(self.char(ch) for ch in text)

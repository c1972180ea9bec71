"""What every tool-call format provides, and the streaming parser they share.

A format describes calls as tagged regions of the model's output: a trigger string that opens a call, a
per-tool `begin` (which names the tool), the arguments JSON, and an `end`. The grammar (an xgrammar
structural tag, which SGLang accepts unchanged) makes these the only way a call can appear, so the parser
can rely on the exact strings instead of guessing.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

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

    def finish(self) -> Iterator[ParsedEvent]: ...


class ToolFormat(Protocol):
    name: str

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


class TaggedCallParser:
    """Incremental parser for tag-delimited calls.

    Feed it text as it streams; it yields plain text, then for each call a ToolCallStart (once the tool's
    name is known) and argument fragments. Text that might be the start of a trigger or an end marker is
    held back, so fragments never include tag text and always join to exactly the arguments JSON.
    """

    def __init__(self, tags: list[CallTag], trigger: str, separator: str = "") -> None:
        self._tags = tags
        self._trigger = trigger
        self._separator = separator
        self._buffer = ""
        self._current: CallTag | None = None
        self._in_call = False  # after a trigger, before the tag's begin has been matched
        self._calls = 0
        self._arguments: list[str] = []

    @property
    def calls(self) -> int:
        return self._calls

    def feed(self, text: str) -> Iterator[ParsedEvent]:
        self._buffer += text
        while True:
            if self._current is not None:
                event = self._scan_arguments()
            elif self._in_call:
                event = self._scan_begin()
            else:
                event = self._scan_text()
            if event is None:
                return
            if event is not _CONTINUE:
                yield event

    def finish(self) -> Iterator[ParsedEvent]:
        """End of output. Text still held back is released; an unfinished call stays unfinished."""
        if self._current is None and not self._in_call and self._buffer:
            rest, self._buffer = self._buffer, ""
            if not (self._calls and not rest.strip()):
                yield TextDelta(rest)

    @property
    def in_call(self) -> bool:
        return self._current is not None or self._in_call

    def _scan_text(self) -> ParsedEvent | object | None:
        at = self._buffer.find(self._trigger)
        if at < 0:
            keep = _partial_suffix(self._buffer, self._trigger)
            out, self._buffer = self._buffer[: len(self._buffer) - keep], self._buffer[len(self._buffer) - keep :]
            return self._text(out) if out else None
        before, self._buffer = self._buffer[:at], self._buffer[at:]
        self._in_call = True
        return self._text(before) if before else _CONTINUE

    def _text(self, text: str) -> ParsedEvent | object:
        if self._calls and not text.strip():
            return _CONTINUE  # whitespace between calls is formatting, not content
        return TextDelta(text)

    def _scan_begin(self) -> ParsedEvent | None:
        for tag in self._tags:
            if self._buffer.startswith(tag.begin):
                self._buffer = self._buffer[len(tag.begin) :]
                self._in_call = False
                self._current = tag
                event = ToolCallStart(self._calls, new_call_id(), tag.name)
                return event
        return None  # wait for more text (the grammar guarantees one of the begins follows)

    def _scan_arguments(self) -> ParsedEvent | object | None:
        assert self._current is not None
        end = self._current.end
        at = self._buffer.find(end)
        index = self._calls
        if at < 0:
            keep = _partial_suffix(self._buffer, end)
            out, self._buffer = self._buffer[: len(self._buffer) - keep], self._buffer[len(self._buffer) - keep :]
            return ToolCallArgs(index, out) if out else None
        out, self._buffer = self._buffer[:at], self._buffer[at + len(end) :]
        self._current = None
        self._calls += 1
        if self._separator and self._buffer.startswith(self._separator):
            self._buffer = self._buffer[len(self._separator) :]
        return ToolCallArgs(index, out) if out else _CONTINUE


_CONTINUE = object()


def _partial_suffix(buffer: str, marker: str) -> int:
    """Length of the longest suffix of `buffer` that is a proper prefix of `marker`."""
    for n in range(min(len(marker) - 1, len(buffer)), 0, -1):
        if buffer.endswith(marker[:n]):
            return n
    return 0


def json_object_text(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, ensure_ascii=False)

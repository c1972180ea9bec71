"""The incremental parser for calls whose arguments are a JSON object between a tag's begin and end.

Shared by the Hermes, Llama 3 and Mistral formats. The end of the arguments is found by following the
JSON itself (strings, escapes, nesting), never by searching for an end marker, so an end such as `}` or
`}\n</tool_call>` that could also occur inside the arguments is no problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Iterator

from runtime.tools.base import (CONTINUE, CallTag, JsonStringEscaper, ParsedEvent, new_call_id, run_steps,
                                split_at_trigger, text_event)
from runtime.types import ToolCallArgs, ToolCallStart

_WHITESPACE = " \t\r\n"

_TEXT, _OPEN, _BEGIN, _ARGS, _END, _AFTER = range(6)


class JsonCallParser:
    """Incremental parser for blocks of JSON calls.

    A block starts where one of `triggers` appears in the text. It is one of `openers` (consumed; "" for
    none), then calls separated by `separator`, then `closer`. A call is a tag's `begin` (which names the
    tool), the arguments (a JSON object, streamed as it arrives), and the tag's `end`. The end of the
    arguments is found by tracking JSON strings and nesting, so an `end` such as `}` that also occurs
    inside the arguments is no problem. Text that might be the start of a trigger is held back; whitespace
    between calls is formatting, not content.

    Where a family writes an index between a tag's `begin` and the arguments (Kimi's
    `functions.NAME:IDX<|tool_call_argument_begin|>`), `index_end` ends it and `call_id(name, index)` makes
    the call's id from it.
    """

    def __init__(self, tags: list[CallTag], triggers: list[str], *, openers: tuple[str, ...] = ("",),
                 separator: str = "", closer: str = "", index_end: str = "",
                 call_id: Callable[[str, str], str] | None = None) -> None:
        self._tags = tags
        self._index_end = index_end
        self._call_id = call_id
        self._triggers = triggers
        self._openers = openers
        self._separator = separator
        self._closer = closer
        self._buffer = ""
        self._state = _TEXT
        self._pending = ""  # structural text consumed since the last call (an opener or a separator)
        self._current: CallTag | None = None
        self._calls = 0
        # JSON tracking inside the arguments
        self._started = False
        self._depth = 0
        self._strings = JsonStringEscaper()  # where JSON strings are, and their raw control characters

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def in_call(self) -> bool:
        return self._state in (_OPEN, _BEGIN, _ARGS, _END)

    def feed(self, text: str) -> Iterator[ParsedEvent]:
        self._buffer += text
        yield from run_steps(lambda: _STEPS[self._state](self))

    def finish(self, cut_off: bool = False) -> Iterator[ParsedEvent]:
        """End of output. Text still held back (a possible trigger's start) is released, or dropped when
        `cut_off`; an unfinished call stays unfinished."""
        if self._state == _AFTER or (self._state == _BEGIN and self._pending == self._separator
                                      and self._separator and not self._buffer):
            # A partial or dangling separator / closer after a complete call: formatting, not text.
            self._buffer, self._pending, self._state = "", "", _TEXT
        if self._state == _TEXT and self._buffer:
            rest, self._buffer = self._buffer, ""
            if not cut_off and (event := text_event(rest, self._calls)) is not None:
                yield event

    # -- states -------------------------------------------------------------------------------------------

    def _scan_text(self) -> ParsedEvent | object | None:
        text, self._buffer, at_trigger = split_at_trigger(self._buffer, self._triggers, self._calls)
        if not at_trigger:
            return text_event(text, self._calls)  # None: wait for more
        self._state, self._pending = _OPEN, ""
        return text_event(text, self._calls) or CONTINUE

    def _scan_open(self) -> ParsedEvent | object | None:
        matched = [o for o in self._openers if self._buffer.startswith(o)]
        if any(len(o) > len(self._buffer) and o.startswith(self._buffer) for o in self._openers):
            return None  # a (longer) opener may still be arriving
        if not matched:
            return self._fallback()
        opener = max(matched, key=len)
        self._buffer = self._buffer[len(opener):]
        self._pending = opener
        self._state = _BEGIN
        return CONTINUE

    def _scan_begin(self) -> ParsedEvent | object | None:
        for tag in self._tags:
            if self._buffer.startswith(tag.begin):
                index = ""
                if self._index_end:
                    at = self._buffer.find(self._index_end, len(tag.begin))
                    if at < 0:
                        return None  # the index is still arriving
                    index = self._buffer[len(tag.begin):at]
                    self._buffer = self._buffer[at + len(self._index_end):]
                else:
                    self._buffer = self._buffer[len(tag.begin):]
                self._current, self._pending, self._state = tag, "", _ARGS
                self._started, self._depth, self._strings = False, 0, JsonStringEscaper()
                call_id = self._call_id(tag.name, index) if self._call_id else new_call_id()
                return ToolCallStart(self._calls, call_id, tag.name)
        if any(tag.begin.startswith(self._buffer) for tag in self._tags):
            return None  # wait for the rest of the begin (the grammar guarantees one follows)
        return self._fallback()

    def _fallback(self) -> ParsedEvent | object:
        """Not a call after all (only possible without the grammar): the consumed text is text."""
        if self._pending:
            out, self._pending = self._pending, ""
        else:
            out, self._buffer = self._buffer[:1], self._buffer[1:]
        self._state = _TEXT
        return text_event(out, self._calls) or CONTINUE

    def _scan_arguments(self) -> ParsedEvent | object | None:
        assert self._current is not None
        buf, i, n = self._buffer, 0, len(self._buffer)
        if not self._started:
            while i < n and buf[i] in _WHITESPACE:
                i += 1
            if i == n:
                self._buffer = ""
                return None
            if buf[i] not in "{[":
                return self._scan_literal(i)
            self._started = True
        out: list[str] = []
        done = False
        while i < n:
            c = buf[i]
            i += 1
            if not self._strings.in_string:
                if c in "{[":
                    self._depth += 1
                elif c in "}]":
                    self._depth -= 1
            out.append(self._strings.char(c))
            if not self._strings.in_string and c in "}]" and self._depth == 0:
                done = True
                break
        fragment, self._buffer = "".join(out), buf[i:]
        if done:
            self._state = _END
        if fragment:
            return ToolCallArgs(self._calls, fragment)
        return CONTINUE if done else None

    def _scan_literal(self, start: int) -> ParsedEvent | object | None:
        """Arguments that are not a JSON object or array (no tool schema allows this): up to the end."""
        assert self._current is not None
        end = self._current.end
        at = self._buffer.find(end, start)
        if at < 0:
            return None
        fragment, self._buffer = self._buffer[start:at], self._buffer[at:]
        self._state = _END
        return ToolCallArgs(self._calls, fragment)

    def _scan_end(self) -> ParsedEvent | object | None:
        assert self._current is not None
        # Whitespace before the end is the JSON's formatting or the end's own (DeepSeek-R1's "\n```"): both are
        # skipped, so an end that starts with a newline still matches.
        end = self._current.end.lstrip(_WHITESPACE)
        if end:  # (an empty end, Mistral v11's, needs nothing more: the call is complete)
            stripped = self._buffer.lstrip(_WHITESPACE)
            if not stripped:
                self._buffer = ""
                return None
            self._buffer = stripped
        if self._buffer.startswith(end):
            self._buffer = self._buffer[len(end):]
        elif end.startswith(self._buffer):
            return None
        self._current = None
        self._calls += 1
        self._state = _AFTER
        return CONTINUE

    def _scan_after(self) -> ParsedEvent | object | None:
        buf = self._buffer
        if self._separator and buf.startswith(self._separator):
            self._buffer = buf[len(self._separator):]
            self._pending, self._state = self._separator, _BEGIN
            return CONTINUE
        if self._closer and buf.startswith(self._closer):
            self._buffer = buf[len(self._closer):]
            self._state = _TEXT
            return CONTINUE
        if not buf:
            return None
        if self._closer and not self._separator:  # a block whose calls follow one another (DeepSeek's, Kimi's)
            if any(buf.startswith(t.begin) for t in self._tags):
                self._state = _BEGIN
                return CONTINUE
            if any(t.begin.startswith(buf) for t in self._tags):
                return None
        if any(m and m.startswith(buf) for m in (self._separator, self._closer)):
            return None
        self._state = _TEXT
        return CONTINUE


_STEPS = {
    _TEXT: JsonCallParser._scan_text,
    _OPEN: JsonCallParser._scan_open,
    _BEGIN: JsonCallParser._scan_begin,
    _ARGS: JsonCallParser._scan_arguments,
    _END: JsonCallParser._scan_end,
    _AFTER: JsonCallParser._scan_after,
}


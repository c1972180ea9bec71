"""Splitting the engine's text into reasoning and answer, incrementally.

Text that may be the start of a marker is held back until it is known, so no partial tag ever reaches either
side, and any split of the same text gives the same events (joined). Whitespace around the markers is
formatting: the reasoning is stripped at both ends, and the answer's leading whitespace after the region
is dropped, as the peers' parsers and the families' templates do.
"""

from __future__ import annotations

import enum
from typing import Protocol

from runtime.stops import partial_suffix
from runtime.types import ReasoningDelta, TextDelta

SplitEvent = ReasoningDelta | TextDelta


class Splitter(Protocol):
    def feed(self, text: str) -> list[SplitEvent]: ...

    def finish(self) -> list[SplitEvent]: ...


class _State(enum.Enum):
    LEAD = "lead"  # only whitespace so far: the region may still open
    INSIDE = "inside"
    AFTER = "after"  # the region just closed: whitespace before the answer is dropped
    ANSWER = "answer"


class ThinkSplitter:
    """`<think>…</think>` and its variants: the region opens at the start of the output (or in the prompt,
    `inside`), and closes once."""

    def __init__(self, start: str, end: str, *, inside: bool = False) -> None:
        self._start, self._end = start, end
        self._state = _State.INSIDE if inside else _State.LEAD
        self._buffer = ""
        self._reasoned = False  # some reasoning was emitted (leading whitespace is dropped until then)

    def feed(self, text: str) -> list[SplitEvent]:
        self._buffer += text
        out: list[SplitEvent] = []
        while True:
            before = (self._state, len(self._buffer))
            out.extend(self._step())
            if (self._state, len(self._buffer)) == before:
                return out

    def _step(self) -> list[SplitEvent]:
        buffer = self._buffer
        match self._state:
            case _State.LEAD:
                lead = buffer.lstrip()
                if lead.startswith(self._start):
                    self._state, self._buffer = _State.INSIDE, lead[len(self._start):]
                elif lead and not self._start.startswith(lead):
                    self._state = _State.ANSWER
                return []
            case _State.INSIDE:
                at = buffer.find(self._end)
                if at >= 0:
                    self._state, self._buffer = _State.AFTER, buffer[at + len(self._end):]
                    return self._reasoning(buffer[:at].rstrip())
                keep = _held(buffer, partial_suffix(buffer, self._end))
                self._buffer = buffer[len(buffer) - keep:]
                return self._reasoning(buffer[:len(buffer) - keep])
            case _State.AFTER:
                answer = buffer.lstrip()
                if answer:
                    self._state = _State.ANSWER
                self._buffer = answer
                return []
            case _State.ANSWER:
                self._buffer = ""
                return [TextDelta(buffer)] if buffer else []

    def _reasoning(self, text: str) -> list[SplitEvent]:
        if not self._reasoned:
            text = text.lstrip()
        if not text:
            return []
        self._reasoned = True
        return [ReasoningDelta(text)]

    def finish(self) -> list[SplitEvent]:
        buffer, self._buffer = self._buffer, ""
        match self._state:
            case _State.LEAD:  # an unfinished start marker is the model's text, not a marker
                return [TextDelta(buffer)] if buffer.strip() else []
            case _State.INSIDE:  # cut off while thinking (max_tokens): a partial end marker is thinking
                return self._reasoning(buffer.rstrip())
            case _State.ANSWER:
                return [TextDelta(buffer)] if buffer else []
        return []


# gpt-oss's harmony format (https://cookbook.openai.com/articles/openai-harmony): each message is
# `<|start|>{role}<|channel|>{channel}[ to={recipient}][<|constrain|>{type}]<|message|>{content}` ended by
# <|end|>, <|return|> (the last) or <|call|> (a tool call). The prompt ends with `<|start|>assistant`.
HARMONY_START = "<|start|>"
HARMONY_CHANNEL = "<|channel|>"
HARMONY_MESSAGE = "<|message|>"
HARMONY_ENDS = ("<|end|>", "<|return|>", "<|call|>")
ANALYSIS = "analysis"


class HarmonySplitter:
    """Harmony channels: analysis is reasoning; final (and commentary without a recipient, a preamble) is the
    answer; a message to a recipient (a tool call) passes to the answer side as one header form plus its
    content, for the harmony tool parser. Output with no header at all is answer text."""

    def __init__(self) -> None:
        self._buffer = ""
        self._header: str | None = ""  # the current message's header while it is read; None: in content
        self._channel = ""
        self._call = False  # the current message is addressed to a recipient (a tool call)
        self._reasoned = False
        self._fresh = True  # no content of the current message emitted yet

    def feed(self, text: str) -> list[SplitEvent]:
        self._buffer += text
        out: list[SplitEvent] = []
        while True:
            size = len(self._buffer), self._header
            out.extend(self._step())
            if (len(self._buffer), self._header) == size:
                return out

    def _step(self) -> list[SplitEvent]:
        buffer = self._buffer
        if self._header is not None:  # reading a header
            at = buffer.find(HARMONY_MESSAGE)
            if at < 0:
                if not _could_be_header(buffer):  # plain text: the answer
                    self._header, self._channel, self._call, self._fresh = None, "final", False, True
                return []
            header = buffer[:at]
            role, _, channel_part = header.partition(HARMONY_CHANNEL)
            self._channel = channel_part.split(" ")[0].split("<|")[0]
            recipient = _recipient(role) or _recipient(channel_part)
            self._call = recipient is not None
            self._header, self._buffer, self._fresh = None, buffer[at + len(HARMONY_MESSAGE):], True
            if recipient is not None:  # one header form for the tool parser (runtime/tools/harmony.py)
                return [TextDelta(f"{HARMONY_CHANNEL}commentary to={recipient} <|constrain|>json{HARMONY_MESSAGE}")]
            return []
        ends = [(at, marker) for marker in HARMONY_ENDS if (at := buffer.find(marker)) >= 0]
        if ends:
            at, marker = min(ends)
            self._header, self._buffer = "", buffer[at + len(marker):]
            return self._content(buffer[:at], final=True)
        keep = max(partial_suffix(buffer, marker) for marker in HARMONY_ENDS)
        if not self._call and self._channel == ANALYSIS:
            keep = _held(buffer, keep)
        self._buffer = buffer[len(buffer) - keep:]
        return self._content(buffer[:len(buffer) - keep], final=False)

    def _content(self, text: str, *, final: bool) -> list[SplitEvent]:
        if self._call:
            return [TextDelta(text)] if text else []
        if self._channel == ANALYSIS:
            if final:
                text = text.rstrip()
            if self._fresh:
                text = text.lstrip()
            if not text:
                return []
            if self._fresh and self._reasoned:  # messages on the analysis channel join as lines
                text = "\n" + text
            self._reasoned, self._fresh = True, False
            return [ReasoningDelta(text)]
        if not text:
            return []
        return [TextDelta(text)]

    def finish(self) -> list[SplitEvent]:
        if self._header is not None:  # an unfinished header is not content
            self._buffer = ""
            return []
        buffer, self._buffer = self._buffer, ""
        if self._call:  # a call cut off inside its end marker: JSON never ends in a marker's start
            buffer = buffer[:len(buffer) - max(partial_suffix(buffer, marker) for marker in HARMONY_ENDS)]
        return self._content(buffer, final=True)


def _recipient(part: str) -> str | None:
    """The `to=` recipient in a header part (`<|start|>assistant to=functions.f` or `commentary to=functions.f
    <|constrain|>json`), if any."""
    for word in part.replace("<|", " <|").split():
        if word.startswith("to="):
            return word[3:]
    return None


def _held(buffer: str, marker_part: int) -> int:
    """How much of the buffer's end to hold: a possible marker's start, and the whitespace before it (which
    is stripped if the marker comes)."""
    head = buffer[:len(buffer) - marker_part]
    return marker_part + len(head) - len(head.rstrip())


def _could_be_header(text: str) -> bool:
    """Whether `text` may still become a message header (it begins with one of harmony's header markers)."""
    for marker in (HARMONY_START, HARMONY_CHANNEL):
        if text.startswith(marker) or marker.startswith(text):
            return True
    return False

"""The output pipeline: one run's engine events in, its ChatEvents out, synchronously.

    engine TextDelta -> reasoning splitter -> thinking: ReasoningDelta, as it is
                                           -> answer: tool-call parser -> text outside calls: stop strings
                                                                          -> JSON escaping -> TextDelta
                                                                       -> calls: ToolCallStart / ToolCallArgs
    engine Logprobs / PromptLogprobs / TokenIds -> as they are (until a stop string matched)
    engine Finished                      -> what the parser and matcher held back, then one ChatFinished

Pure and engine-free: `push()` one engine event, get the events to send; `stopped` tells the caller that
a stop string matched and the engine should be aborted (whatever it sends after that is dropped, but for
its Finished, which brings the prompt's usage). GenerationService.run is a loop around this.

Stop strings are matched here and only here, for every request (engines never see them): on the answer's
text outside calls, so a stop string cannot cut a call or the thinking. An engine runs on for a few tokens
before its abort lands, so the usage of a stopped output is counted here too, from the engine TextDeltas'
`tokens`: up to and including the token whose text completed the stop string (vLLM's count), or, where the
parser held that text back as the possible start of a call, the token that showed it was not one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import assert_never

from runtime.reasoning.plan import ReasoningPlan
from runtime.stops import StopMatcher
from runtime.tools.base import CallParser, JsonStringEscaper, ParsedEvent
from runtime.types import (
    ChatEvent,
    ChatFinished,
    EngineEvent,
    Finished,
    FinishReason,
    Logprobs,
    PromptLogprobs,
    ReasoningDelta,
    TextDelta,
    TokenIds,
    TokenLogprob,
    Usage,
)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """What a prepared request asks of its output (built once per request by GenerationService)."""

    parser: CallParser | None = None
    text_stops: tuple[str, ...] = ()  # stop strings matched on the text outside calls
    json_text: bool = False  # escape raw control characters in JSON strings of the text
    reasoning: ReasoningPlan | None = None  # a reasoning model's request: thinking is split off first
    tokens_as_ids: bool = False  # logprob entries name their token "token_id:<id>" (vLLM's return_tokens_as_token_ids)


class OutputPipeline:
    def __init__(self, spec: OutputSpec) -> None:
        self._parser = spec.parser
        self._stops = StopMatcher(spec.text_stops)
        self._escape = JsonStringEscaper() if spec.json_text else None
        self._splitter = spec.reasoning.splitter() if spec.reasoning is not None else None
        self._tokens_as_ids = spec.tokens_as_ids
        self.stopped_by: str | None = None  # the stop string that matched
        self.finished = False
        self._tokens = 0  # generated tokens whose text has come in (the engine TextDeltas' `tokens`)
        self._tokens_at_stop = 0  # of those, the ones up to the stop string's match

    @property
    def stopped(self) -> bool:
        return self.stopped_by is not None

    def push(self, event: EngineEvent) -> list[ChatEvent]:
        if self.finished:
            raise RuntimeError(f"{type(event).__name__} after the run's Finished")
        match event:
            case TextDelta():
                if self.stopped:
                    return []
                self._tokens += event.tokens
                if self._splitter is None:
                    return self._answer(event.text)
                return self._split(self._splitter.feed(event.text))
            case Logprobs() | PromptLogprobs() if self._tokens_as_ids and not self.stopped:
                return [replace(event, tokens=tuple(_named_by_id(t) for t in event.tokens))]
            case Logprobs() | PromptLogprobs() | TokenIds():  # not text: past the parser and stops as they are
                return [] if self.stopped else [event]
            case Finished():
                return self.finish(event)
            case _:
                assert_never(event)

    def finish(self, finished: Finished) -> list[ChatEvent]:
        """The held-back text and calls, then the one ChatFinished."""
        self.finished = True
        out: list[ChatEvent] = []
        if not self.stopped and self._splitter is not None:
            out = self._split(self._splitter.finish())
        if not self.stopped and self._parser is not None:
            cut_off = finished.reason is FinishReason.LENGTH  # a trigger's start held back is not text
            out += self._outside_calls(self._parser.finish(cut_off))
        if not self.stopped:  # the text held as a possible stop string's start is text after all
            tail = self._stops.flush()
            tail = self._escape(tail) if self._escape is not None and tail else tail
            if tail:
                out.append(TextDelta(tail))
        calls = self._parser.calls if self._parser is not None else 0
        if self.stopped_by is not None:
            out.append(ChatFinished(FinishReason.STOP, self._stopped_usage(finished.usage), self.stopped_by, calls))
            return out
        reason = finished.reason
        if calls and reason is FinishReason.STOP and self._parser is not None and not self._parser.in_call:
            reason = FinishReason.TOOL_CALLS
        out.append(ChatFinished(reason, finished.usage, finished.matched_stop, calls))
        return out

    def _stopped_usage(self, usage: Usage) -> Usage:
        """The engine's usage, but for the tokens it generated past the stop string before its abort came."""
        tokens = self._tokens_at_stop
        return replace(usage, completion_tokens=tokens, reasoning_tokens=min(usage.reasoning_tokens, tokens))

    def _split(self, events: Iterable[ReasoningDelta | TextDelta]) -> list[ChatEvent]:
        """The splitter's events: thinking as it is (the parser and the stop strings are the answer's), the
        answer's text on through the parser."""
        out: list[ChatEvent] = []
        for event in events:
            if self.stopped:
                break
            out += [*self._held_text(), event] if isinstance(event, ReasoningDelta) else self._answer(event.text)
        return out

    def _held_text(self) -> list[TextDelta]:
        """The text held back as a possible stop string's start, where a call or thinking comes next: it is text
        before them (a stop string never spans them)."""
        held = self._stops.flush()
        return [TextDelta(self._escape(held) if self._escape is not None else held)] if held else []

    def _answer(self, text: str) -> list[ChatEvent]:
        parsed = self._parser.feed(text) if self._parser is not None else (TextDelta(text),)
        return self._outside_calls(parsed)

    def _outside_calls(self, events: Iterable[ParsedEvent]) -> list[ChatEvent]:
        """Text through the stop strings and the escaper; call events as they are; nothing once stopped."""
        out: list[ChatEvent] = []
        for event in events:
            if self.stopped:
                break
            if not isinstance(event, TextDelta):
                out += self._held_text()
                out.append(event)
                continue
            result = self._stops.push(event.text)
            if result.matched is not None:
                self.stopped_by, self._tokens_at_stop = result.matched, self._tokens
            text = self._escape(result.text) if self._escape is not None and result.text else result.text
            if text:
                out.append(TextDelta(text))
        return out


def _named_by_id(entry: TokenLogprob) -> TokenLogprob:
    """vLLM's return_tokens_as_token_ids: the entry and its alternatives named "token_id:<id>"."""
    name = f"token_id:{entry.id}"
    return replace(entry, token=name, data=name.encode(), top=tuple(_named_by_id(t) for t in entry.top))

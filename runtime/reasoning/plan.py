"""One request's reasoning: template variables, where the output starts, and the engine's control."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.errors import InvalidRequest
from runtime.reasoning.formats import ReasoningFormat
from runtime.reasoning.splitter import Splitter
from runtime.types import ReasoningOptions, ThinkingControl

# How tokenizers spell whitespace in their vocabularies: byte-level BPE (GPT-2's byte-to-unicode map for
# space, newline, tab, carriage return) and SentencePiece (U+2581, byte fallback).
_BYTE_LEVEL_SPACE = set("ĠĊĉč▁ \n\t\r")


def whitespace_ids(tokenizer: Any) -> frozenset[int]:
    """Token ids whose text is only whitespace (those may come before a thinking region opens)."""
    return frozenset(i for token, i in tokenizer.get_vocab().items()
                     if token and (set(token) <= _BYTE_LEVEL_SPACE or token == "<0x0A>"))


@dataclass(frozen=True)
class ReasoningPlan:
    format: ReasoningFormat
    inside: bool  # the prompt opened the region: the output starts in it
    control: ThinkingControl

    def splitter(self) -> Splitter:
        return self.format.splitter(inside=self.inside)


class ReasoningModel:
    """The served model's reasoning format with its markers in token ids (computed once)."""

    def __init__(self, fmt: ReasoningFormat, tokenizer: Any) -> None:
        def ids(text: str) -> tuple[int, ...]:
            return tuple(tokenizer.encode(text, add_special_tokens=False)) if text else ()

        self.format = fmt
        self._start, self._end = ids(fmt.start), ids(fmt.end)
        self._forced = self._end + ids(fmt.after_end)
        self._forced_call = self._end + ids(fmt.between)
        self._lead = whitespace_ids(tokenizer)
        # Markers that are special tokens vanish from text detokenized without them (a family may make
        # <think> one): the output is then detokenized with special tokens kept.
        special = set(getattr(tokenizer, "all_special_tokens", ()))
        self.keeps_special_tokens = fmt.keeps_special_tokens or fmt.start in special or fmt.end in special

    def template_kwargs(self, options: ReasoningOptions) -> dict[str, Any]:
        return self.format.template_kwargs(options)

    def plan(self, options: ReasoningOptions, prompt: str, *, call_forced: bool = False) -> ReasoningPlan:
        """`prompt`: the rendered prompt text, whose end says whether the template opened the region (DeepSeek
        R1, MiniMax M2, V3.1 thinking) or closed it (Qwen3 and GLM with thinking off). `call_forced`: the answer
        must be a tool call (tool_choice required or named), so a spent budget forces no final-answer header."""
        tail = prompt.rstrip()
        inside = self.format.kind == "think" and tail.endswith(self.format.start)
        closed = self.format.kind == "think" and tail.endswith(self.format.end)
        budget = options.budget_tokens
        if budget is not None and budget < 0:
            raise InvalidRequest("The thinking budget must not be negative.", param="thinking.budget_tokens")
        if options.enabled is False:  # where the template has no switch, the engine closes the region at once
            budget = 0
        forced = self._forced_call if call_forced else self._forced
        control = ThinkingControl(self._start, self._end, forced, starts_inside=inside, budget=budget,
                                  force_open=options.enabled is True and not inside and not closed,
                                  lead_ids=self._lead)
        return ReasoningPlan(self.format, inside, control)

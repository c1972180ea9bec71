"""One request's reasoning: template variables, where the output starts, and the engine's control."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.errors import InvalidRequest
from runtime.reasoning.formats import ReasoningFormat
from runtime.reasoning.markers import marker_spelling, vocabulary_bytes
from runtime.reasoning.splitter import Splitter
from runtime.types import ReasoningOptions, ThinkingControl


@dataclass(frozen=True)
class ReasoningPlan:
    format: ReasoningFormat
    inside: bool  # the prompt opened the region: the output starts in it
    control: ThinkingControl

    def splitter(self) -> Splitter:
        return self.format.splitter(inside=self.inside)


class ReasoningModel:
    """The served model's reasoning format with its markers' canonical token ids and the tokens that can spell
    them (computed once)."""

    def __init__(self, fmt: ReasoningFormat, tokenizer: Any) -> None:
        def ids(text: str) -> tuple[int, ...]:
            return tuple(tokenizer.encode(text, add_special_tokens=False)) if text else ()

        self.format = fmt
        self._start, end = ids(fmt.start), ids(fmt.end)
        self._forced = end + ids(fmt.after_end)
        self._forced_call = end + ids(fmt.between)
        self._markers = marker_spelling(fmt.start, fmt.end, vocabulary_bytes(tokenizer))
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
        control = ThinkingControl(self._start, forced, self._markers, starts_inside=inside, budget=budget,
                                  force_open=options.enabled is True and not inside and not closed)
        return ReasoningPlan(self.format, inside, control)

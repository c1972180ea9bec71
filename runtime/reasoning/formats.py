"""Reasoning formats by model family: one entry each, picked from the chat template or by setting
(`--reasoning-format`, `none` to turn splitting off). Family details live here and nowhere else."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from runtime.reasoning.splitter import HarmonySplitter, Splitter, ThinkSplitter
from runtime.types import ReasoningOptions

log = logging.getLogger(__name__)

# The reasoning_effort values a template takes (gpt-oss's: low, medium, high), for each effort a client may send
# (OpenAI's SDK: none, minimal, low, medium, high, xhigh, max; Anthropic's output_config.effort: low to max).
TEMPLATE_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


@dataclass(frozen=True)
class ReasoningFormat:
    name: str
    kind: Literal["think", "harmony"]
    start: str  # opens the thinking region
    end: str  # closes it
    # Forced after `end` when the budget is spent, so the answer begins (harmony: the next message's start and
    # the final channel's header); `between` alone where the answer must be a tool call (harmony's next message).
    after_end: str = ""
    between: str = ""
    # Template variables that switch thinking on or off (booleans), and the one that takes reasoning_effort.
    switches: tuple[str, ...] = ()
    effort_variable: str | None = None
    history_key: str = "reasoning_content"  # the assistant message field the template reads past thinking from
    keeps_special_tokens: bool = False  # the markers are special tokens: detokenize with them kept
    families: str = ""  # for the docs and the log line

    def splitter(self, *, inside: bool) -> Splitter:
        if self.kind == "harmony":
            return HarmonySplitter()
        return ThinkSplitter(self.start, self.end, inside=inside)

    def template_kwargs(self, options: ReasoningOptions) -> dict[str, Any]:
        """The template variables for `options` (the client's own chat_template_kwargs go over them)."""
        out: dict[str, Any] = {}
        if options.enabled is not None:
            out.update({switch: options.enabled for switch in self.switches})
        if self.effort_variable is not None:
            if options.effort in TEMPLATE_EFFORTS:
                out[self.effort_variable] = TEMPLATE_EFFORTS[options.effort]
            elif options.enabled is False:
                out[self.effort_variable] = "low"
        return out


_THINK = dict(kind="think", start="<think>", end="</think>")

_FORMATS: dict[str, ReasoningFormat] = {
    "qwen3": ReasoningFormat("qwen3", **_THINK, switches=("enable_thinking",),  # type: ignore[arg-type]
                             families="Qwen3, Qwen3.5, GLM-4.5 and later (enable_thinking)"),
    "deepseek_v3": ReasoningFormat("deepseek_v3", **_THINK, switches=("thinking",),  # type: ignore[arg-type]
                                   families="DeepSeek V3.1 and later (thinking)"),
    "deepseek_r1": ReasoningFormat("deepseek_r1", **_THINK,  # type: ignore[arg-type]
                                   families="DeepSeek R1, MiniMax M2, Kimi K2 thinking (always think)"),
    "gpt_oss": ReasoningFormat("gpt_oss", "harmony", "<|channel|>analysis<|message|>", "<|end|>",
                               after_end="<|start|>assistant<|channel|>final<|message|>", between="<|start|>assistant",
                               effort_variable="reasoning_effort", history_key="thinking",
                               keeps_special_tokens=True, families="gpt-oss (harmony channels)"),
}


def reasoning_format_names() -> tuple[str, ...]:
    return ("auto", "none", *_FORMATS)


def detect_reasoning_format(chat_template: Any) -> str:
    """The family whose thinking syntax the template shows; `none` for a template that shows none."""
    text = str(chat_template or "")
    if "<|channel|>" in text and "analysis" in text:
        return "gpt_oss"
    if "<think>" not in text and "</think>" not in text:
        return "none"
    if "enable_thinking" in text:
        return "qwen3"
    if "thinking is defined" in text or "not thinking" in text:
        return "deepseek_v3"
    return "deepseek_r1"


def select_reasoning_format(setting: str, chat_template: Any) -> ReasoningFormat | None:
    name = detect_reasoning_format(chat_template) if setting == "auto" else setting
    if name != "none" and name not in _FORMATS:
        raise ValueError(f"unknown reasoning format {name!r}; choose one of {', '.join(reasoning_format_names())}")
    if setting == "auto":
        log.info("reasoning format: %s (%s)", name, "from the chat template's markers" if name != "none" else
                 "the chat template shows no thinking markers; --reasoning-format sets one")
    return _FORMATS.get(name)

"""Tool-call formats by model family: one entry each, picked from the chat template or by setting.

Everything family-specific the service needs to choose a format is here: the module that implements it, and
the strings in a chat template (or among the tokenizer's added tokens) that show the family's call syntax.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from runtime.tools.base import ToolFormat

log = logging.getLogger(__name__)

_FORMATS = {
    "hermes": "runtime.tools.hermes:HermesFormat",
    "qwen3_coder": "runtime.tools.qwen3_coder:Qwen3CoderFormat",
    "llama3_json": "runtime.tools.llama3:Llama3JsonFormat",
    "mistral": "runtime.tools.mistral:MistralFormat",
    "mistral_v11": "runtime.tools.mistral_v11:MistralV11Format",
    "glm45": "runtime.tools.glm:Glm45Format",
    "glm47": "runtime.tools.glm:Glm47Format",
    "kimi_k2": "runtime.tools.kimi_k2:KimiK2Format",
    "deepseek_v3": "runtime.tools.deepseek_v31:DeepSeekV3Format",
    "deepseek_v31": "runtime.tools.deepseek_v31:DeepSeekV31Format",
    "deepseek_v32": "runtime.tools.deepseek_v32:DeepSeekV32Format",
    "minimax": "runtime.tools.minimax:MiniMaxFormat",
    "harmony": "runtime.tools.harmony:HarmonyFormat",
    "pythonic": "runtime.tools.pythonic:PythonicFormat",
}

# Detection, first match wins: (format, strings that must all appear in the template, or all among the
# tokenizer's added tokens, or None where the template alone decides). Order matters where families share a
# marker: GLM's and Qwen3-Coder's templates also contain Hermes's `<tool_call>`, Mistral v11 shares
# `[TOOL_CALLS]` with the older form, DeepSeek V3 / R1 share V3.1's tokens (and fence the arguments in ```json).
# (gpt-oss's harmony joins with `<|channel|>` + `<|call|>`.)
_MARKERS: list[tuple[str, tuple[str, ...], tuple[str, ...] | None]] = [
    ("harmony", ("<|channel|>", "<|call|>"), None),  # gpt-oss
    ("kimi_k2", ("<|tool_calls_section_begin|>",), ("<|tool_calls_section_begin|>", "<|tool_call_argument_begin|>")),
    ("deepseek_v32", ("｜DSML｜",), None),
    ("deepseek_v3", ("<｜tool▁calls▁begin｜>", "<｜tool▁sep｜>", "```json"), None),  # V3 (0324), R1, R1-0528
    ("deepseek_v31", ("<｜tool▁calls▁begin｜>", "<｜tool▁sep｜>"), None),
    ("minimax", ("<minimax:tool_call>",), ("<minimax:tool_call>",)),
    ("glm47", ("<arg_key>", "<arg_value>", "<tool_call>{function-name}<arg_key>"), None),
    ("glm45", ("<arg_key>", "<arg_value>"), None),
    ("qwen3_coder", ("<function=", "<parameter="), None),
    ("mistral_v11", ("[TOOL_CALLS]", "[ARGS]"), None),
    ("mistral", ("[TOOL_CALLS]",), None),
    ("pythonic", ("[func_name1(",), None),  # Llama 3.2 / Llama 4 pythonic templates
    ("llama3_json", ("<|python_tag|>",), None),
    ("hermes", ("<tool_call>",), None),
]


def format_names() -> tuple[str, ...]:
    return ("auto", *_FORMATS)


def get_format(name: str) -> ToolFormat:
    if name not in _FORMATS:
        raise ValueError(f"unknown tool-call format {name!r}; choose one of {', '.join(format_names())}")
    module, _, cls = _FORMATS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


@dataclass(frozen=True, slots=True)
class Detection:
    name: str
    reason: str
    known: bool  # False: nothing matched and `name` is the fallback


def detect_format(chat_template: Any, added_tokens: Iterable[str] = ()) -> Detection:
    """The family whose call syntax the template (or the tokenizer's added tokens) shows; Hermes, our
    documented fallback, otherwise."""
    text = str(chat_template or "")
    tokens = set(added_tokens)
    for name, needles, token_needles in _MARKERS:
        if all(n in text for n in needles):
            return Detection(name, f"the chat template contains {' and '.join(map(repr, needles))}", True)
        if token_needles and tokens.issuperset(token_needles):
            return Detection(name, f"the tokenizer has the tokens {' and '.join(map(repr, token_needles))}", True)
    if not text:
        return Detection("hermes", "the model has no chat template", False)
    return Detection("hermes", "the chat template shows no tool-call syntax known here", False)


def select_format(setting: str, chat_template: Any, added_tokens: Iterable[str] = ()) -> ToolFormat:
    if setting != "auto":
        log.info("tool format %s: set by --tool-format", setting)
        return get_format(setting)
    found = detect_format(chat_template, added_tokens)
    if found.known:
        log.info("tool format %s: %s", found.name, found.reason)
    else:
        log.warning("tool format %s, the fallback: %s (--tool-format chooses one of %s)", found.name,
                    found.reason, ", ".join(_FORMATS))
    return get_format(found.name)

"""Tool-call formats by model family: one entry each, picked from the chat template or by setting."""

from __future__ import annotations

import importlib
from typing import Any

from runtime.tools.base import ToolFormat

_FORMATS = {
    "hermes": "runtime.tools.hermes:HermesFormat",
    "qwen3_coder": "runtime.tools.qwen3_coder:Qwen3CoderFormat",
    "llama3_json": "runtime.tools.llama3:Llama3JsonFormat",
    "mistral": "runtime.tools.mistral:MistralFormat",
    "mistral_v11": "runtime.tools.mistral_v11:MistralV11Format",
    "harmony": "runtime.tools.harmony:HarmonyFormat",
}


def format_names() -> tuple[str, ...]:
    return ("auto", *_FORMATS)


def get_format(name: str) -> ToolFormat:
    if name not in _FORMATS:
        raise ValueError(f"unknown tool-call format {name!r}; choose one of {', '.join(format_names())}")
    module, _, cls = _FORMATS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


def detect_format(chat_template: Any) -> str:
    """The family whose call syntax the template shows; Hermes (our documented fallback) otherwise."""
    text = str(chat_template or "")
    markers = [
        ("harmony", ("<|channel|>", "<|call|>")),  # gpt-oss
        ("qwen3_coder", ("<function=", "<parameter=")),
        ("mistral_v11", ("[TOOL_CALLS]", "[ARGS]")),  # before the older form, whose marker it shares
        ("mistral", ("[TOOL_CALLS]",)),
        ("llama3_json", ("<|python_tag|>",)),
        ("hermes", ("<tool_call>",)),
    ]
    for name, needles in markers:
        if name in _FORMATS and all(n in text for n in needles):
            return name
    return "hermes"


def select_format(setting: str, chat_template: Any) -> ToolFormat:
    return get_format(detect_format(chat_template) if setting == "auto" else setting)

"""Rendering a conversation into prompt token ids with the model's own chat template.

This is the one templating path for both engines (SGLang receives our `input_ids`). Tool-specific
rendering for templates that cannot show tools is delegated to the request's tool format.
"""

from __future__ import annotations

import json
from typing import Any

from jinja2 import TemplateError

from runtime.errors import InvalidRequest
from runtime.model import ModelInfo
from runtime.types import Message, TemplateOptions, Tool


def message_dicts(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Neutral messages as the dicts HF chat templates expect (OpenAI-like, arguments as objects)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            d["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in m.tool_calls
            ]
        if m.tool_call_id is not None:
            d["tool_call_id"] = m.tool_call_id
        if m.name is not None:
            d["name"] = m.name
        if m.reasoning:
            d["reasoning_content"] = m.reasoning
        out.append(d)
    return out


# Arguments of apply_chat_template (and variables we set) that chat_template_kwargs may not replace.
RESERVED_TEMPLATE_KWARGS = frozenset({
    "messages", "conversation", "tools", "documents", "chat_template", "add_generation_prompt",
    "continue_final_message", "tokenize", "padding", "truncation", "max_length", "return_tensors", "return_dict",
    "return_assistant_tokens_mask", "tokenizer_kwargs",
})


def tool_dicts(tools: tuple[Tool, ...]) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]


class ChatTemplate:
    def __init__(self, model: ModelInfo) -> None:
        self._tokenizer = model.tokenizer
        if not getattr(self._tokenizer, "chat_template", None):
            raise ValueError(f"the model at {model.path} has no chat template")
        self.arguments_as_text = False
        self.renders_tool_list, self.renders_calls = self._probe_tools()

    def render(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
        options: TemplateOptions = TemplateOptions(),
    ) -> list[int]:
        # The request's own variables first, so that ours win (convert refuses the names anyway).
        kwargs: dict[str, Any] = {**options.kwargs, "add_generation_prompt": options.add_generation_prompt,
                                  "continue_final_message": options.continue_final_message, "tokenize": False}
        if tools:
            kwargs["tools"] = tools
        if self.arguments_as_text:
            messages = _arguments_as_text(messages)
        try:
            text = self._tokenizer.apply_chat_template(messages, **kwargs)
        except TemplateError as exc:  # the template's raise_exception(...) (its message is meant for users), or
            # an undefined it met; other exceptions from odd content are the preparation phase's (app/preparing.py)
            raise InvalidRequest(f"The model's chat template rejected the conversation: {exc}",
                                 param="messages") from None
        except ValueError as exc:  # continue_final_message on a message the template does not write as given
            if not options.continue_final_message:
                raise
            raise InvalidRequest(f"The final message cannot be continued with this chat template: {exc}",
                                 param="continue_final_message") from None
        return self.encode(text)

    @property
    def renders_tools(self) -> bool:
        """Whether the template shows both the tool list and past calls (and results)."""
        return self.renders_tool_list and self.renders_calls

    def _probe_tools(self) -> tuple[bool, bool]:
        """(shows the tool list, shows past calls): probed by rendering them, since a template may mention
        "tools" without rendering either. Templates that concatenate the arguments as text (DeepSeek V3.1's
        `'...' + tool['function']['arguments']`) fail with an object: they are probed again with JSON text,
        and get it from then on."""
        probe = [
            {"role": "user", "content": "?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_probe_zq", "type": "function", "function": {"name": "probe_call_zq", "arguments": {}}}]},
            {"role": "tool", "tool_call_id": "call_probe_zq", "content": "ok"},
        ]
        tools = [{"type": "function", "function": {"name": "probe_tool_zq", "description": "",
                                                   "parameters": {"type": "object", "properties": {}}}}]
        for as_text in (False, True):
            try:
                text = self._tokenizer.apply_chat_template(_arguments_as_text(probe) if as_text else probe,
                                                           tools=tools, tokenize=False, add_generation_prompt=True)
            except Exception:  # a template that rejects tool messages (in this form) does not render them
                continue
            self.arguments_as_text = as_text
            # A past call shows by its name, or (Kimi's templates) by its id, there and before its result.
            return "probe_tool_zq" in text, "probe_call_zq" in text or text.count("call_probe_zq") >= 2
        return False, False

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        # By default none: a rendered template already wrote any BOS it wants; adding it again would double it.
        return list(self._tokenizer.encode(text, add_special_tokens=add_special_tokens))


def _arguments_as_text(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with each past call's arguments as JSON text instead of an object."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            calls = [{**c, "function": {**c["function"], "arguments": arguments_json(c["function"]["arguments"])}}
                     for c in m["tool_calls"]]
            m = {**m, "tool_calls": calls}
        out.append(m)
    return out


def arguments_json(arguments: dict[str, Any]) -> str:
    """Canonical JSON for tool-call arguments (as sent back to clients)."""
    return json.dumps(arguments, ensure_ascii=False)

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
        self.renders_tools = self._renders_tools()

    def render(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
        options: TemplateOptions = TemplateOptions(),
    ) -> list[int]:
        # The request's own variables first, so that ours win (convert refuses the names anyway).
        kwargs: dict[str, Any] = {**options.kwargs, "add_generation_prompt": options.add_generation_prompt,
                                  "continue_final_message": options.continue_final_message, "tokenize": False}
        if tools:
            kwargs["tools"] = tools
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

    def _renders_tools(self) -> bool:
        """Whether the template shows both a tool list and past calls: probed by rendering them, since a
        template may mention "tools" without rendering either."""
        probe = [
            {"role": "user", "content": "?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "probe_call_zq", "arguments": {}}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "ok"},
        ]
        tools = [{"type": "function", "function": {"name": "probe_tool_zq", "description": "",
                                                   "parameters": {"type": "object", "properties": {}}}}]
        try:
            text = self._tokenizer.apply_chat_template(probe, tools=tools, tokenize=False, add_generation_prompt=True)
        except Exception:  # a template that rejects tool messages does not render tools
            return False
        return "probe_tool_zq" in text and "probe_call_zq" in text

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        # By default none: a rendered template already wrote any BOS it wants; adding it again would double it.
        return list(self._tokenizer.encode(text, add_special_tokens=add_special_tokens))


def arguments_json(arguments: dict[str, Any]) -> str:
    """Canonical JSON for tool-call arguments (as sent back to clients)."""
    return json.dumps(arguments, ensure_ascii=False)

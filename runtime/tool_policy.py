"""--tool-call-first: under tool_choice auto, a turn that has no tool result yet since the user last spoke
must begin with a tool call.

Agents such as Codex CLI and Claude Code send `tool_choice: "auto"` on every turn and have no setting to
change it. A small model that was never trained on the tool format (the embedded default, SmolLM2-135M)
then never starts a call by itself, so an agent loop never runs a tool. With this option the grammar forces a
call on the first step of a user's turn (as `required` does, so the call names a request tool and validates)
and leaves the model free once a tool result is in the conversation, so it can answer.
"""

from __future__ import annotations

from dataclasses import replace

from runtime.types import ChatRequest, ToolChoice, ToolChoiceMode


def awaits_first_call(request: ChatRequest) -> bool:
    """Whether no tool result follows the conversation's last user message."""
    for message in reversed(request.messages):
        if message.role == "tool":
            return False
        if message.role == "user":
            return True
    return True


def apply_tool_call_first(request: ChatRequest) -> ChatRequest:
    """The request with `auto` made `required` where a user's turn awaits its first call; anything else as sent."""
    choice = request.tool_choice
    if not request.tools or choice.mode is not ToolChoiceMode.AUTO or not awaits_first_call(request):
        return request
    return replace(request, tool_choice=ToolChoice(ToolChoiceMode.REQUIRED, parallel=choice.parallel))

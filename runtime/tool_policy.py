"""--tool-call-first: under tool_choice auto, a turn that has no tool result yet since the user last spoke
must begin with a tool call.

Agents such as Codex CLI and Claude Code send `tool_choice: "auto"` on every turn and have no setting to
change it. A small model that was never trained on the tool format (the embedded default, SmolLM2-135M)
then never starts a call by itself, so an agent loop never runs a tool. With this option the grammar forces a
call on the first step of a user's turn (as `required` does, so the call names a request tool and validates)
and leaves the model free once a tool result is in the conversation, so it can answer. `--first-tool NAME`
narrows that first call to one tool where the request offers it (Codex sends a dozen tools, and a small model
forced to call one of them picks poorly).
"""

from __future__ import annotations

from dataclasses import replace

from runtime.types import ChatRequest, ToolChoice, ToolChoiceMode


def awaits_first_call(request: ChatRequest) -> bool:
    """Whether no tool result follows the conversation's last user turn. Text sent along with tool results is
    not a new turn: Anthropic's user message of tool_result and text blocks (Claude Code adds reminders to its
    results) becomes tool messages then a user message, and forcing another call there would never let an agent
    loop end."""
    user_spoke = False
    for message in reversed(request.messages):
        if message.role == "tool":
            return False
        if message.role == "user":
            user_spoke = True
        elif user_spoke:  # an assistant's (or the system's) message before the user's: a fresh turn
            return True
    return True


def apply_tool_call_first(request: ChatRequest, first_tool: str | None = None) -> ChatRequest:
    """The request with `auto` made `required` where a user's turn awaits its first call (a call of `first_tool`
    where the request offers a tool of that name: --first-tool); anything else as sent."""
    choice = request.tool_choice
    if not request.tools or choice.mode is not ToolChoiceMode.AUTO or not awaits_first_call(request):
        return request
    if first_tool is not None and any(tool.name == first_tool for tool in request.tools):
        return replace(request, tool_choice=ToolChoice(ToolChoiceMode.NAMED, first_tool, parallel=choice.parallel))
    return replace(request, tool_choice=ToolChoice(ToolChoiceMode.REQUIRED, parallel=choice.parallel))

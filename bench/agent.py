"""An agent-session workload modelled on Claude Code: every session shares one large system prompt and
tool list; each turn resends the whole history, grown by the last tool call and its result.

The assistant's side of the history is scripted (a tool call per turn) rather than the model's real reply,
so sessions are identical whichever server or model runs them and the figures compare. A server with
prefix caching can reuse everything up to the new tool result: the reported cache-hit ratio says how much
it did.
"""

from __future__ import annotations

import random

from bench.prompts import PromptBuilder
from bench.runner import Job, Send
from bench.spec import AssistantTurn, ChatSpec, HistoryItem, ToolChoice, ToolResult, ToolSpec, ToolUse, UserText

SYSTEM_HEAD = (
    "You are an interactive CLI agent that helps users with software engineering tasks. Use the tools "
    "available to you to read, search and edit the user's repository and to run commands. Be concise. "
    "Reference code as file_path:line_number.\n\n# Environment\nWorking directory: /repo\nPlatform: linux\n\n"
    "# Project notes\n"
)

_SCHEMA = "http://json-schema.org/draft-07/schema#"


def _tool(name: str, description: str, properties: dict, required: list[str]) -> ToolSpec:
    return ToolSpec(name, description, {"$schema": _SCHEMA, "type": "object", "properties": properties,
                                        "required": required, "additionalProperties": False})


_S = {"type": "string"}
CLAUDE_CODE_LIKE_TOOLS = (
    _tool("Bash", "Executes a given bash command with an optional timeout. Use for git, tests and builds; "
          "prefer the dedicated tools for reading, searching and editing files.",
          {"command": {**_S, "description": "The command to execute"},
           "timeout": {"type": "number", "maximum": 600000, "description": "Optional timeout in milliseconds"},
           "description": {**_S, "description": "What this command does, in 5-10 words"},
           "run_in_background": {"type": "boolean"}}, ["command"]),
    _tool("Read", "Reads a file from the local filesystem. Returns at most 2000 lines from the offset, with "
          "line numbers.", {"file_path": {**_S, "description": "The absolute path to the file"},
                            "offset": {"type": "number"}, "limit": {"type": "number"}}, ["file_path"]),
    _tool("Edit", "Performs exact string replacements in a file. old_string must be unique in the file unless "
          "replace_all is set.", {"file_path": _S, "old_string": _S, "new_string": _S,
                                  "replace_all": {"type": "boolean", "default": False}},
          ["file_path", "old_string", "new_string"]),
    _tool("Write", "Writes a file to the local filesystem, overwriting any existing file.",
          {"file_path": _S, "content": _S}, ["file_path", "content"]),
    _tool("Glob", "Fast file pattern matching; returns matching paths sorted by modification time.",
          {"pattern": _S, "path": _S}, ["pattern"]),
    _tool("Grep", "Searches file contents with ripgrep regular expressions.",
          {"pattern": _S, "path": _S, "glob": _S,
           "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"]},
           "-i": {"type": "boolean"}, "head_limit": {"type": "number"}}, ["pattern"]),
    _tool("TodoWrite", "Creates and updates the structured task list for the current session.",
          {"todos": {"type": "array", "items": {
              "type": "object", "additionalProperties": False, "required": ["content", "status", "activeForm"],
              "properties": {"content": {**_S, "minLength": 1},
                             "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                             "activeForm": {**_S, "minLength": 1}}}}}, ["todos"]),
    _tool("WebFetch", "Fetches a URL and answers a prompt about its content.",
          {"url": {**_S, "format": "uri"}, "prompt": _S}, ["url", "prompt"]),
)


def _scripted_call(rng: random.Random, builder: PromptBuilder, call_id: str, turn: int) -> ToolUse:
    word = rng.choice(builder.words).strip()
    match turn % 4:
        case 1:
            return ToolUse(call_id, "Grep", {"pattern": word, "path": "/repo", "output_mode": "content"})
        case 2:
            return ToolUse(call_id, "Read", {"file_path": f"/repo/src/{word}.py"})
        case 3:
            return ToolUse(call_id, "Bash", {"command": "python -m pytest -q tests/", "description": "Run the tests"})
        case _:
            return ToolUse(call_id, "Edit", {"file_path": f"/repo/src/{word}.py", "old_string": word,
                                             "new_string": word + "_v2"})


def agent_sessions(builder: PromptBuilder, *, sessions: int, turns: int, system_tokens: int, user_tokens: int,
                   tool_result_tokens: int, output_len: int, seed: int, tool_choice: ToolChoice | None = None,
                   temperature: float = 0.0) -> list[list[ChatSpec]]:
    """Per session, the request of every turn in order."""
    system = SYSTEM_HEAD + builder.text(system_tokens, random.Random(f"agent-system-{seed}"))
    out = []
    for s in range(sessions):
        rng = random.Random(f"agent-{seed}-{s}")
        reminder = "<system-reminder>\n" + builder.text(64, rng) + "\n</system-reminder>\n"
        history: list[HistoryItem] = [UserText(reminder + builder.text(user_tokens, rng))]
        specs = []
        for turn in range(turns):
            if turn:
                call = _scripted_call(rng, builder, f"toolu_bench{s:04d}{turn:04d}", turn)
                result = ToolResult(call.id, builder.text(tool_result_tokens, rng))
                history += [AssistantTurn(tool_uses=(call,)), result]
            specs.append(ChatSpec(tuple(history), max_tokens=output_len, system=system, tools=CLAUDE_CODE_LIKE_TOOLS,
                                  tool_choice=tool_choice, temperature=temperature))
        out.append(specs)
    return out


def session_job(specs: list[ChatSpec]) -> Job:
    """A session: its turns one after another, as an agent waits for each reply."""

    async def job(send: Send) -> None:
        for turn, spec in enumerate(specs):
            await send(spec, turn)

    return job

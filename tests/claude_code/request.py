"""A request shaped like the ones Claude Code 2.1.197 sends (see /work/shared/notes/anthropic-and-claude-code.md):
three system blocks led by the billing header, two dozen tools whose schemas use the JSON-schema keywords the
CLI's do, metadata / thinking / context_management / output_config, and a conversation that ends with a
tool_result turn followed by a system-role message."""

from __future__ import annotations

import copy
from typing import Any

DRAFT = "https://json-schema.org/draft/2020-12/schema"
MAX_SAFE = 9007199254740991


def _object(properties: dict[str, Any], required: tuple[str, ...] | list[str] = (), **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"$schema": DRAFT, "type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    schema["additionalProperties"] = False
    schema.update(extra)
    return schema


def _text(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "type": "string", **extra}


def tools() -> list[dict[str, Any]]:
    """24 tools, named and shaped after the CLI's."""
    status = {"anyOf": [{"type": "string", "enum": ["pending", "in_progress", "completed"]},
                        {"type": "string", "const": "deleted"}], "description": "New status for the task"}
    finding = {"type": "object", "properties": {
        "file": _text("Repo-relative path"),
        "line": {"type": "integer", "minimum": -MAX_SAFE, "maximum": MAX_SAFE},
        "severity": {"type": "string", "enum": ["low", "medium", "high"]},
    }, "required": ["file", "line"], "additionalProperties": False}
    specs: list[tuple[str, str, dict[str, Any]]] = [
        ("Agent", "Launch a new agent to handle complex, multi-step tasks autonomously.", _object({
            "description": _text("A short (3-5 word) description of the task"),
            "prompt": _text("The task for the agent to perform"),
            "subagent_type": _text("The type of specialized agent to use for this task"),
            "model": {"description": "Optional model override", "type": "string", "enum": ["sonnet", "opus", "haiku"]},
            "run_in_background": {"description": "Run in the background", "type": "boolean", "default": False},
        }, ["description", "prompt"])),
        ("Bash", "Executes a given bash command and returns its output.", _object({
            "command": _text("The command to execute"),
            "timeout": {"description": "Optional timeout in milliseconds (max 600000)", "type": "number",
                        "minimum": 0, "maximum": 600000},
            "description": _text("Clear, concise description of what this command does", maxLength=200),
            "run_in_background": {"type": "boolean", "default": False},
        }, ["command"])),
        ("CronCreate", "Schedule a prompt on a cron expression.", _object({
            "cron": _text("Standard 5-field cron expression", minLength=9, maxLength=100),
            "prompt": _text("The prompt to enqueue at each fire time."),
            "recurring": {"type": "boolean", "default": True},
        }, ["cron", "prompt"])),
        ("CronDelete", "Delete a scheduled job.", _object({"id": _text("Job ID returned by CronCreate.")}, ["id"])),
        ("CronList", "List scheduled jobs.", _object({})),
        ("Edit", "Performs exact string replacements in files.", _object({
            "file_path": _text("The absolute path to the file to modify"),
            "old_string": _text("The text to replace"),
            "new_string": _text("The text to replace it with (must be different from old_string)"),
            "replace_all": {"description": "Replace all occurrences", "default": False, "type": "boolean"},
        }, ["file_path", "old_string", "new_string"])),
        ("EnterWorktree", "Create or enter a git worktree.", _object({
            "name": _text("Optional name for a new worktree", maxLength=64),
            "path": _text("Path to an existing worktree"),
        })),
        ("ExitWorktree", "Leave the current worktree.", _object({
            "action": {"type": "string", "enum": ["keep", "remove"]},
            "discard_changes": {"type": "boolean"},
        }, ["action"])),
        ("NotebookEdit", "Replace the contents of a Jupyter notebook cell.", _object({
            "notebook_path": _text("The absolute path to the notebook"),
            "cell_id": _text("The ID of the cell to edit"),
            "new_source": _text("The new source for the cell"),
            "cell_type": {"type": "string", "enum": ["code", "markdown"]},
            "edit_mode": {"type": "string", "enum": ["replace", "insert", "delete"], "default": "replace"},
        }, ["notebook_path", "new_source"])),
        ("Read", "Reads a file from the local filesystem.", _object({
            "file_path": _text("The absolute path to the file to read"),
            "offset": {"type": "integer", "minimum": 0, "maximum": MAX_SAFE},
            "limit": {"type": "integer", "exclusiveMinimum": 0, "maximum": MAX_SAFE},
            "pages": _text("Page range for PDF files", pattern=r"^[0-9]+(-[0-9]+)?$"),
        }, ["file_path"])),
        ("ReportFindings", "Report verified review findings.", _object({
            "level": {"type": "string", "enum": ["low", "medium", "high", "xhigh", "max"]},
            "findings": {"type": "array", "maxItems": 32, "items": finding},
        }, ["level", "findings"])),
        ("ScheduleWakeup", "Wake up later and continue.", _object({
            "delaySeconds": {"type": "number", "minimum": 60, "maximum": 3600},
            "reason": _text("Why this delay"),
        }, ["delaySeconds", "reason"])),
        ("SendMessage", "Send a message to a teammate.", _object({
            "to": _text("Recipient: teammate name"),
            "summary": _text("A 5-10 word summary", maxLength=200),
            "message": _text("Plain text message content"),
        }, ["to", "message"])),
        ("Skill", "Run a skill.", _object({"skill": _text("The skill's name"), "args": _text("Arguments")}, ["skill"])),
        ("TaskCreate", "Create a task in the task list.", _object({
            "subject": _text("A brief title for the task"),
            "description": _text("What needs to be done"),
            "metadata": {"type": "object", "propertyNames": {"type": "string"}, "additionalProperties": {}},
        }, ["subject", "description"])),
        ("TaskGet", "Get a task.", _object({"taskId": _text("The ID of the task")}, ["taskId"])),
        ("TaskList", "List tasks.", _object({})),
        ("TaskOutput", "Get a background task's output.", _object({
            "task_id": _text("The task ID"),
            "block": {"type": "boolean", "default": True},
            "timeout": {"type": "number", "default": 30000, "minimum": 0, "maximum": 600000},
        }, ["task_id", "block", "timeout"])),
        ("TaskStop", "Stop a background task.", _object({"task_id": _text("The task ID")})),
        ("TaskUpdate", "Update a task.", _object({
            "taskId": _text("The ID of the task to update"),
            "status": status,
            "addBlocks": {"type": "array", "items": {"type": "string"}, "maxItems": 16},
        }, ["taskId"])),
        ("WebFetch", "Fetch a URL and run a prompt on its content.", _object({
            "url": _text("The URL to fetch content from", format="uri"),
            "prompt": _text("The prompt to run on the fetched content"),
        }, ["url", "prompt"])),
        ("WebSearch", "Search the web.", _object({
            "query": _text("The search query to use", minLength=2),
            "allowed_domains": {"type": "array", "items": {"type": "string"}},
        }, ["query"])),
        ("Workflow", "Run a workflow script.", _object({
            "script": _text("Self-contained workflow script", maxLength=524288),
            "name": _text("Name of a predefined workflow"),
        })),
        ("Write", "Writes a file to the local filesystem.", _object({
            "file_path": _text("The absolute path to the file to write"),
            "content": _text("The content to write to the file"),
        }, ["file_path", "content"])),
    ]
    return [{"name": name, "description": description, "input_schema": schema} for name, description, schema in specs]


SYSTEM_PROMPT = (
    "\nYou are an interactive agent that helps users with software engineering tasks. Use the instructions "
    "below and the tools available to you to assist the user.\n\n# Doing tasks\n- Read files before editing "
    "them.\n- Keep answers short.\n- Prefer the dedicated tools over Bash.\n\n# Environment\nWorking directory: "
    "/tmp/project\nPlatform: linux\n"
)


def billing_header(cch: str | None) -> str:
    extra = f" cch={cch};" if cch is not None else ""
    return f"x-anthropic-billing-header: cc_version=2.1.197.123; cc_entrypoint=sdk-cli;{extra}"


def request(*, cch: str | None = "3f2a9", stream: bool = False, max_tokens: int = 32000) -> dict[str, Any]:
    """The body of a Claude-Code-shaped POST /v1/messages?beta=true."""
    body: dict[str, Any] = {
        "model": "claude-opus-4-8",
        "system": [
            {"type": "text", "text": billing_header(cch)},
            {"type": "text", "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK.",
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}},
        ],
        "tools": tools(),
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nToday's date is 2026-11-25.\n</system-reminder>"},
                {"type": "text", "text": "list the files here", "cache_control": {"type": "ephemeral"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "The user wants a listing.", "signature": "c2lnbmF0dXJl"},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_01A", "name": "Bash",
                 "input": {"command": "ls", "description": "List files"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "README.md\nsrc\n"},
                {"type": "text", "text": "<system-reminder>Keep it short.</system-reminder>"},
            ]},
            {"role": "system", "content": "Available agent types for the Agent tool:\n- Explore: read-only search."},
        ],
        "metadata": {"user_id": '{"device_id":"abc","account_uuid":"","session_id":"s-1"}'},
        "max_tokens": max_tokens,
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "stream": stream,
    }
    return copy.deepcopy(body)

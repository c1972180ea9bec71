"""What the load generator sends and what it records, independent of the API dialect."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ToolChoice = Literal["auto", "required", "none"]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of type object


@dataclass(frozen=True, slots=True)
class ToolUse:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UserText:
    text: str


@dataclass(frozen=True, slots=True)
class AssistantTurn:
    text: str = ""
    tool_uses: tuple[ToolUse, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool_use_id: str
    content: str


HistoryItem = UserText | AssistantTurn | ToolResult


@dataclass(frozen=True, slots=True)
class ChatSpec:
    """One request: each dialect client renders it into its own wire format."""

    messages: tuple[HistoryItem, ...]
    max_tokens: int
    system: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None  # None: the field is not sent (Claude Code sends none)
    ignore_eos: bool = True  # with max_tokens, makes the output length exact where the server honours it
    temperature: float = 0.0
    expected_prompt_tokens: int | None = None  # what the workload built, checked against the server's usage


@dataclass(slots=True)
class RequestResult:
    """One request's outcome. Times are seconds, relative to when the request was sent."""

    ok: bool = False
    status: str = ""  # the HTTP status, 'stream_error' for an in-band error, or the exception's name
    error: str | None = None
    ttft: float | None = None  # the first chunk carrying output (text, reasoning or tool-call arguments)
    chunk_times: list[float] = field(default_factory=list)  # arrival of every chunk carrying output
    e2e: float | None = None
    prompt_tokens: int | None = None  # from the server's usage
    output_tokens: int | None = None
    cached_tokens: int | None = None
    expected_prompt_tokens: int | None = None
    expected_output_tokens: int | None = None
    tool_calls: int = 0
    text: str = ""
    turn: int = 0  # position in its session (agent workload)
    tag: str = ""  # the variant it belongs to, where one run mixes variants (tools workload)

    @property
    def output_count(self) -> int:
        """Output tokens: the server's usage where it reported one, else the output chunks seen."""
        return self.output_tokens if self.output_tokens is not None else len(self.chunk_times)

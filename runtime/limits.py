"""Bounds on what one request may hold, beyond the body size (--max-request-bytes). Each keeps the work a
request causes before the engine runs (conversion, schema checks, templating) proportional to something sane;
past one, the request is a 400 naming the field. docs/API.md lists them."""

from __future__ import annotations

from runtime.errors import InvalidRequest

# Tools per request. OpenAI allows 128 functions; Anthropic documents no number, and Claude Code with several
# MCP servers sends a few hundred. Each tool costs a JSON-schema check (~3 ms for a small schema, measured) and
# its part of the grammar, so 5,000 tools meant half a minute of work for one body.
MAX_TOOLS = 512
# One history tool call's arguments, as JSON text: 1 MiB is about 250k tokens, more than any served window.
MAX_ARGUMENTS_CHARS = 1 << 20
# Nesting of one call's arguments. Real arguments use a handful of levels; Python's json, jinja's tojson and the
# tool formats' serialisers recurse, and fail near 1,000.
MAX_ARGUMENTS_DEPTH = 64


def check_tool_count(count: int, param: str = "tools") -> None:
    if count > MAX_TOOLS:
        raise InvalidRequest(f"At most {MAX_TOOLS} tools are accepted per request; got {count}.", param=param)

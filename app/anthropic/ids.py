"""Tool-call ids between the runtime and Anthropic's `tool_use` ids, which must match `^[a-zA-Z0-9_-]+$`.

The runtime's own ids (`call_<hex>`) become `toolu_<hex>`. A family whose template needs its ids back as the
model wrote them (Kimi K2's `functions.NAME:IDX`, with `.` and `:`) gets them carried inside the id,
base64url-encoded after `toolu_b64_`, and restored when the client sends the conversation back, so the
template renders the id the model learned.
"""

from __future__ import annotations

import base64
import binascii
import re

_ALLOWED = re.compile(r"^[a-zA-Z0-9_-]+$")
_CARRIED = "toolu_b64_"


def tool_use_id(call_id: str) -> str:
    """A runtime call id as a valid Anthropic tool_use id."""
    if call_id.startswith("call_") and _ALLOWED.match(call_id):
        return "toolu_" + call_id.removeprefix("call_")
    return _CARRIED + base64.urlsafe_b64encode(call_id.encode()).decode().rstrip("=")


def call_id(client_id: str) -> str:
    """The runtime id a client's tool_use id stands for: a carried id restored; any other unchanged."""
    if not client_id.startswith(_CARRIED):
        return client_id
    encoded = client_id.removeprefix(_CARRIED)
    try:
        decoded = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return client_id  # not one of ours
    return decoded if tool_use_id(decoded) == client_id else client_id

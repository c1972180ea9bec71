"""Tool-call arguments from a conversation's history, as clients send them back: parsed (OpenAI sends JSON
text, Anthropic an object) and checked, so that what the chat template and the tool formats serialise again is
plain JSON. Each refusal is a 400 naming the arguments' path (e.g. `messages[3].tool_calls[0].function.arguments`)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from runtime.errors import InvalidRequest
from runtime.limits import MAX_ARGUMENTS_CHARS, MAX_ARGUMENTS_DEPTH

# A lone UTF-16 surrogate: JSON's \u escapes can write one, but no UTF-8 encoder (the tokenizer's) can.
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_arguments(text: str | None, param: str) -> dict[str, Any]:
    """OpenAI's `function.arguments` text as an object (absent or empty means {})."""
    if text and len(text) > MAX_ARGUMENTS_CHARS:
        raise InvalidRequest(f"Tool call arguments must be at most {MAX_ARGUMENTS_CHARS} characters; got "
                             f"{len(text)}.", param=param)
    try:
        arguments = json.loads(text or "{}")
    except RecursionError:
        raise InvalidRequest(f"Tool call arguments must nest at most {MAX_ARGUMENTS_DEPTH} levels deep.",
                             param=param) from None
    except json.JSONDecodeError:
        raise InvalidRequest("Tool call arguments must be a JSON object string.", param=param) from None
    except ValueError:  # Python's int-from-text limit (4,300 digits)
        raise InvalidRequest("Tool call arguments hold a number too long to read.", param=param) from None
    if not isinstance(arguments, dict):
        raise InvalidRequest("Tool call arguments must be a JSON object.", param=param)
    check_arguments(arguments, param)
    return arguments


def check_arguments(arguments: dict[str, Any], param: str) -> None:
    """Refuse what would fail later, when the arguments are written out again: nesting deeper than
    MAX_ARGUMENTS_DEPTH, lone surrogates in keys or strings, non-finite numbers (1e400 reads as infinity)."""
    stack: list[tuple[Any, int]] = [(arguments, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
            bad_key = next((k for k in node if not isinstance(k, str) or _SURROGATE.search(k)), None)
            if bad_key is not None:
                raise InvalidRequest("Tool call arguments hold a key that is not valid Unicode text (a lone "
                                     "surrogate escape such as \\ud800).", param=param)
        elif isinstance(node, list):
            children = node
        else:
            if isinstance(node, str) and _SURROGATE.search(node):
                raise InvalidRequest("Tool call arguments hold a string that is not valid Unicode text (a lone "
                                     "surrogate escape such as \\ud800).", param=param)
            if isinstance(node, float) and not math.isfinite(node):
                raise InvalidRequest("Tool call arguments hold a number outside the range of a double.",
                                     param=param)
            continue
        if depth > MAX_ARGUMENTS_DEPTH:
            raise InvalidRequest(f"Tool call arguments must nest at most {MAX_ARGUMENTS_DEPTH} levels deep.",
                                 param=param)
        stack.extend((child, depth + 1) for child in children)

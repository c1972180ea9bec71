"""Tool parameter schemas as clients send them: checked, normalised, and relaxed where the grammar engine
cannot enforce a keyword.

xgrammar 0.2.7 enforces types, properties/required/additionalProperties, items/prefixItems and their counts,
enum/const, anyOf/oneOf (as anyOf), $ref/$defs, string lengths/pattern/format, numeric bounds. It accepts
but does not enforce the keywords in UNENFORCED; we remove them (documented in docs/TOOLS.md) so the
schema a call is guaranteed to satisfy is stated honestly — and refuse them for `strict` tools.
"""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from runtime.errors import InvalidRequest

UNENFORCED = frozenset({
    "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies", "contains",
    "minContains", "maxContains", "uniqueItems", "unevaluatedProperties", "unevaluatedItems", "multipleOf",
})
# Keywords whose values are schemas (or maps/lists of schemas): relaxation walks into them.
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "propertyNames", "contains", "not", "if", "then", "else")

# xgrammar 0.2.7 compiles a bounded string length into a grammar whose size grows with the bound, and the
# token-mask precomputation with it: with a 49k vocabulary, maxLength 16 costs 0.27 s to compile, 64 costs
# 1.5 s, 200 costs 4.7 s (measured; a 151k vocabulary is slower still). Claude Code's tools carry bounds like
# 200 and 524288, which would stall an agent's first turn for tens of seconds. Non-strict tools therefore keep
# string-length bounds up to this size only; strict tools keep every bound and pay the compile once (cached).
MAX_ENFORCED_STRING_BOUND = 32
# Beyond this, even a strict tool's bound is refused: its compile could take minutes (a denial of service).
MAX_STRICT_BOUND = 4096
_STRING_BOUNDS = ("minLength", "maxLength")
_QUANTIFIER = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def _largest_quantifier(pattern: str) -> int:
    """The largest repetition bound in a regex ({n}, {m,n}), which is what makes it costly to compile."""
    return max((int(n) for m in _QUANTIFIER.finditer(pattern) for n in m.groups() if n), default=0)

TOOL_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def check_tool_name(name: str, param: str) -> None:
    if not TOOL_NAME.match(name):
        raise InvalidRequest(
            f"Invalid tool name {name!r}: use 1-128 letters, digits, '_', '-', '.' or ':'.", param=param
        )


def normalise_parameters(parameters: Any, param: str) -> dict[str, Any]:
    """An object schema for a tool's parameters (absent or empty means 'no parameters')."""
    if parameters is None or parameters == {}:
        return {"type": "object", "properties": {}}
    if not isinstance(parameters, dict):
        raise InvalidRequest("Tool parameters must be a JSON schema object.", param=param)
    kind = parameters.get("type", "object")
    if kind != "object":
        raise InvalidRequest(f"Tool parameters must be a schema of type 'object', not {kind!r}.", param=param)
    try:
        Draft202012Validator.check_schema(parameters)
    except SchemaError as exc:
        raise InvalidRequest(f"Invalid tool parameters schema: {exc.message}", param=param) from None
    return {"type": "object", **parameters}


def relax(schema: Any, *, strict: bool = False) -> tuple[Any, list[str]]:
    """The schema without the keywords the grammar cannot enforce, and which were removed. Unless `strict`,
    string-length bounds and patterns too costly to compile are dropped as well (not reported: they are not
    refused); with `strict`, only bounds above MAX_STRICT_BOUND are, and reported (so refused)."""
    removed: list[str] = []

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            bound = value if key in _STRING_BOUNDS and isinstance(value, int) else (
                _largest_quantifier(value) if key == "pattern" and isinstance(value, str) else 0)
            if key in UNENFORCED:
                removed.append(key)
            elif bound > MAX_STRICT_BOUND:
                removed.append(f"{key} above {MAX_STRICT_BOUND}")
            elif bound > MAX_ENFORCED_STRING_BOUND and not strict:
                continue
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {k: walk(v) for k, v in value.items()}
            elif key in _SCHEMA_LISTS or key in _SCHEMA_VALUES:
                out[key] = walk(value)
            else:
                out[key] = value
        return out

    return walk(schema), sorted(set(removed))

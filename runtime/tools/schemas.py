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


def relax(schema: Any) -> tuple[Any, list[str]]:
    """The schema without the keywords the grammar cannot enforce, and which were removed."""
    removed: list[str] = []

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in UNENFORCED:
                removed.append(key)
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {k: walk(v) for k, v in value.items()}
            elif key in _SCHEMA_LISTS or key in _SCHEMA_VALUES:
                out[key] = walk(value)
            else:
                out[key] = value
        return out

    return walk(schema), sorted(set(removed))

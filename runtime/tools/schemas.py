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
from runtime.tools.budget import SCHEMA_LISTS, SCHEMA_MAPS, SCHEMA_VALUES, check_finite, check_shape
from runtime.tools.regex_cost import pattern_cost

UNENFORCED = frozenset({
    "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies", "contains",
    "minContains", "maxContains", "uniqueItems", "unevaluatedProperties", "unevaluatedItems", "multipleOf",
})

# xgrammar 0.2.7 compiles a bounded string length into a grammar whose size grows with the bound, and the
# token-mask precomputation with it: with a 49k vocabulary, maxLength 16 costs 0.27 s to compile, 64 costs
# 1.5 s, 200 costs 4.7 s (measured; a 151k vocabulary is slower still). Claude Code's tools carry bounds like
# 200 and 524288, which would stall an agent's first turn for tens of seconds. Non-strict tools therefore keep
# string-length bounds up to this size only; strict tools keep every bound and pay the compile once (cached).
MAX_ENFORCED_STRING_BOUND = 32
# Non-strict tools likewise keep only patterns whose estimated cost (runtime/tools/regex_cost.py) is within
# this many positions: a nest of small repetitions such as `((a{0,30}){0,30}){0,30}` costs minutes however
# small each bound is.
MAX_ENFORCED_PATTERN_COST = 256
# Beyond this, even a strict tool's bound is refused: its compile could take minutes (a denial of service).
# What strict schemas may cost in all is bounded by the grammar budget (runtime/tools/budget.py).
MAX_STRICT_BOUND = 4096
_STRING_BOUNDS = ("minLength", "maxLength")

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
    check_shape(parameters, param)  # first: what follows recurses
    try:
        Draft202012Validator.check_schema(parameters)
    except SchemaError as exc:
        raise InvalidRequest(f"Invalid tool parameters schema: {exc.message}", param=param) from None
    normalised = {"type": "object", **parameters}
    check_finite(normalised, param)
    return normalised


def check_output_schema(schema: dict[str, Any], param: str) -> None:
    """A response format's schema: its shape and that some finite value satisfies it."""
    check_shape(schema, param)
    check_finite(schema, param)


def relax(schema: Any, *, strict: bool = False) -> tuple[Any, list[str]]:
    """The schema without the keywords the grammar cannot enforce, and which were removed. Unless `strict`,
    string-length bounds and patterns too costly to compile are dropped as well (not reported: they are not
    refused); with `strict`, only bounds above MAX_STRICT_BOUND are, and reported (so refused). What is kept
    is then held to the grammar budget (runtime/tools/budget.py)."""
    removed: list[str] = []

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        if isinstance(node.get("allOf"), list) and len(node["allOf"]) > 1:
            merged = merge_all_of(node)
            if merged is None:
                removed.append("allOf with parts that cannot be merged")
            else:
                node = merged
        out: dict[str, Any] = {}
        for key, value in node.items():
            bound, cost = 0, 0
            if key in _STRING_BOUNDS and isinstance(value, int):
                bound = value
            elif key == "pattern" and isinstance(value, str):
                estimate = pattern_cost(value)
                bound, cost = estimate.largest_bound, estimate.positions
            if key in UNENFORCED:
                removed.append(key)
            elif bound > MAX_STRICT_BOUND:
                removed.append(f"{key} above {MAX_STRICT_BOUND}")
            elif (bound > MAX_ENFORCED_STRING_BOUND or cost > MAX_ENFORCED_PATTERN_COST) and not strict:
                continue
            elif key in SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {k: walk(v) for k, v in value.items()}
            elif key in SCHEMA_LISTS or key in SCHEMA_VALUES:
                out[key] = walk(value)
            else:
                out[key] = value
        return out

    return walk(schema), sorted(set(removed))


# How merge_all_of combines a keyword that several parts of an allOf give: the tighter bound wins.
_LOWER_BOUNDS = frozenset({"minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties"})
_UPPER_BOUNDS = frozenset({"maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties"})
_ANNOTATIONS = frozenset({"description", "title", "default", "examples", "$comment", "deprecated"})


def merge_all_of(schema: dict[str, Any]) -> dict[str, Any] | None:
    """An `allOf` of several parts as one schema, as the grammar can enforce it: xgrammar reads only a
    one-part allOf, and of several enforces none (a string allOf with `minLength` and `maxLength` in two parts
    admitted any string; an object one, objects missing either part's required keys). Bounds take the
    tighter, `required` the union, `type` and `enum` the intersection, a property in two parts an allOf of
    both; None where the parts cannot be combined that way (a `$ref` part, two different patterns...)."""
    parts = [schema] + list(schema["allOf"])
    merged: dict[str, Any] = {}
    for part in parts:
        if not isinstance(part, dict) or (part is not schema and "$ref" in part):
            return None
        for key, value in part.items():
            if key == "allOf" and part is schema:
                continue
            if key not in merged:
                merged[key] = value
                continue
            current = merged[key]
            if current == value or key in _ANNOTATIONS:
                continue
            if key in _LOWER_BOUNDS | _UPPER_BOUNDS and _is_number(current) and _is_number(value):
                merged[key] = max(current, value) if key in _LOWER_BOUNDS else min(current, value)
            elif key == "required" and isinstance(current, list) and isinstance(value, list):
                merged[key] = current + [r for r in value if r not in current]
            elif key == "properties" and isinstance(current, dict) and isinstance(value, dict):
                merged[key] = {**current, **{name: ({"allOf": [current[name], sub]} if name in current else sub)
                                             for name, sub in value.items()}}
            elif key == "type":
                both = [t for t in _types(current) if t in _types(value)]
                if not both:
                    return None
                merged[key] = both[0] if len(both) == 1 else both
            elif key == "enum" and isinstance(current, list) and isinstance(value, list):
                merged[key] = [v for v in current if v in value]
            else:
                return None
    return merged


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _types(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [t for t in value if isinstance(t, str)] if isinstance(
        value, list) else []

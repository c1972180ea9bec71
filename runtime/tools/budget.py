"""Checks on a JSON schema before any grammar is built from it, each a 400 naming where the schema came from
(`param`: `tools[3].function.parameters`, `response_format.json_schema.schema`, ...):

- `check_shape`: at most MAX_SCHEMA_DEPTH levels of nesting and MAX_SCHEMA_NODES values, checked without
  recursion, before anything that recurses (jsonschema, the chat template's `tojson`, xgrammar) sees it.
- `check_finite`: some finite JSON value satisfies it. `{"$ref": "#"}`, or an object that requires a property
  whose schema refers back to it, compiles into a grammar with no way to finish: every token is then forbidden
  and the engine could only fail.
- `check_grammar_budget`: the estimated cost of compiling the request's schemas into one grammar is within
  the budget (--grammar-budget), else a refusal at once naming the costliest keyword, instead of a compile
  that holds CPUs for minutes.

The estimate counts "positions": what xgrammar unrolls and then precomputes token masks for. Measured with the
default model's 49k vocabulary on 2 cores (a 151k vocabulary is about 3x slower), a position costs 2-45 ms:
- a string's `minLength`/`maxLength`: as many positions as the repetition has copies (the bound; 256 above
  128, where xgrammar stops unrolling). maxLength 16 compiled in 0.31 s, 64 in 1.2 s, 128 in 2.0 s, 129 to
  100,000 in 3.2-4.6 s. Identical bounds are compiled once per grammar, so they count once per request;
  ten different bounds of 200-209 took over 20 s.
- a `pattern` (also `patternProperties` keys): runtime/tools/regex_cost.py; nested repetitions multiply.
- an object's optional properties: their number squared over 10,000 (1,000 optional properties: 0.95 s).
Arrays do not multiply what they hold: the items are one rule, referenced. A 30 x 30 x 30 nest of bounded
arrays compiled in under a millisecond, 100 strings of maxLength 200 as fast as one.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from runtime.errors import InvalidRequest
from runtime.tools.regex_cost import pattern_cost, repetition_count

MAX_SCHEMA_DEPTH = 64  # levels of JSON nesting (a property's schema is two: `properties`, then the schema)
MAX_SCHEMA_NODES = 10_000  # JSON values in one schema
# The default --grammar-budget, in positions: about 15-30 s of compile in the worst case on the measured
# machine, and far above real tools (Claude Code's 24 tools: 18; 428 were they all strict).
DEFAULT_GRAMMAR_BUDGET = 1024

# Keywords whose values are schemas (or maps/lists of schemas): what walks into subschemas follows these.
SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
SCHEMA_VALUES = ("items", "additionalProperties", "propertyNames", "contains", "not", "if", "then", "else")
_SCALAR_TYPES = frozenset({"null", "boolean", "string", "number", "integer"})


def subschemas(schema: dict[str, Any], path: str) -> Iterator[tuple[str, Any]]:
    """(path, subschema) for each schema directly inside `schema`."""
    for key in SCHEMA_MAPS:
        value = schema.get(key)
        if isinstance(value, dict):
            yield from ((f"{path}.{key}.{name}", sub) for name, sub in value.items())
    for key in SCHEMA_LISTS:
        value = schema.get(key)
        if isinstance(value, list):
            yield from ((f"{path}.{key}[{i}]", sub) for i, sub in enumerate(value))
    for key in SCHEMA_VALUES:
        if key in schema:
            yield f"{path}.{key}", schema[key]


# -- shape ----------------------------------------------------------------------------------------------


def check_shape(schema: Any, param: str) -> None:
    """At most MAX_SCHEMA_DEPTH levels deep and MAX_SCHEMA_NODES values, found without recursing."""
    stack: list[tuple[Any, int]] = [(schema, 1)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_SCHEMA_NODES:
            raise InvalidRequest(f"The schema at {param} is too large: at most {MAX_SCHEMA_NODES} values are "
                                 "accepted in one schema.", param=param)
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_SCHEMA_DEPTH:
            raise InvalidRequest(f"The schema at {param} nests too deeply: at most {MAX_SCHEMA_DEPTH} levels of "
                                 "JSON are accepted.", param=param)
        stack.extend((child, depth + 1) for child in children)


# -- finiteness -----------------------------------------------------------------------------------------


class _Productivity:
    """Which schemas some finite JSON value satisfies: the least fixed point over an and/or graph (a schema
    needs its `$ref`'s target, all its `allOf` parts, one of its `anyOf`/`oneOf` branches or types; an object
    all its required properties; an array the items its minItems demands), found by counting down each node's
    unmet needs. Linear in the schema's size, and without recursion."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.needs: list[int] = []
        self.parents: list[list[int]] = []
        self.where: list[str | None] = []  # each schema's path, for the message
        self.refs: dict[int, tuple[str, int]] = {}  # schema node -> ($ref text, its target's node)
        self.children: list[list[int]] = []
        self._nodes: dict[int, int] = {}  # id(schema dict) -> node
        self._pending: list[tuple[dict[str, Any], int, str]] = []
        self.TRUE, self.FALSE = self._new("and", []), self._new("or", [])
        self.start = self._schema(root, "")
        while self._pending:
            self._expand(*self._pending.pop())

    def _new(self, kind: str, children: list[int], where: str | None = None) -> int:
        node = len(self.needs)
        children = list(dict.fromkeys(children))
        self.needs.append(len(children) if kind == "and" else 1)
        self.children.append(children)
        self.parents.append([])
        self.where.append(where)
        for child in children:
            self.parents[child].append(node)
        return node

    def _schema(self, schema: Any, path: str) -> int:
        if schema is True or (isinstance(schema, dict) and not schema):
            return self.TRUE
        if schema is False:
            return self.FALSE
        if not isinstance(schema, dict):
            return self.TRUE  # not a schema: the schema checks say so, not this one
        node = self._nodes.get(id(schema))
        if node is None:
            node = self._nodes[id(schema)] = self._new("and", [], path)
            self._pending.append((schema, node, path))
        return node

    def _expand(self, schema: dict[str, Any], node: int, path: str) -> None:
        """A schema's needs, read as xgrammar 0.2.7 reads a schema (SchemaParser::Parse): the first of `$ref`,
        `const`, `enum`, `anyOf`, `oneOf`, `allOf`, `type` decides what it is; without them, object keywords
        make an object, array keywords an array, and anything else is any value."""
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target = self._resolve(ref)
            if target is None:
                return  # not followed here: xgrammar reports a reference it cannot resolve
            parts = [self._schema(target, ref)]
            self.refs[node] = (ref, parts[0])
        elif "const" in schema:
            parts = []
        elif "enum" in schema:
            parts = [] if schema["enum"] != [] else [self.FALSE]
        elif isinstance(schema.get("anyOf"), list) or isinstance(schema.get("oneOf"), list):
            key = "anyOf" if isinstance(schema.get("anyOf"), list) else "oneOf"
            parts = [self._new("or", [self._schema(b, f"{path}.{key}[{i}]") for i, b in enumerate(schema[key])])]
        elif isinstance(schema.get("allOf"), list):
            parts = [self._schema(sub, f"{path}.allOf[{i}]") for i, sub in enumerate(schema["allOf"])]
        elif isinstance(schema.get("type"), (str, list)):
            kinds = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
            parts = [self._new("or", [self._typed(schema, kind, path) for kind in kinds])]
        elif "properties" in schema or "additionalProperties" in schema:
            parts = [self._typed(schema, "object", path)]
        elif "items" in schema or "prefixItems" in schema:
            parts = [self._typed(schema, "array", path)]
        else:
            return
        self.needs[node] = len(set(parts))
        for child in dict.fromkeys(parts):
            self.children[node].append(child)
            self.parents[child].append(node)

    def _typed(self, schema: dict[str, Any], kind: Any, path: str) -> int:
        if kind == "object":
            properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
            needed = []
            required = schema.get("required") if isinstance(schema.get("required"), list) else []
            for name in required:
                if not isinstance(name, str):
                    continue
                if name in properties:
                    needed.append(self._schema(properties[name], f"{path}.properties.{name}"))
                elif "patternProperties" not in schema:
                    needed.append(self._schema(schema.get("additionalProperties", True),
                                               f"{path}.additionalProperties"))
            return self._new("and", needed)
        if kind == "array":
            least = schema.get("minItems", 0)
            prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
            count = min(least, len(prefix) + 1) if isinstance(least, int) else 0
            items = [self._schema(prefix[i], f"{path}.prefixItems[{i}]") if i < len(prefix)
                     else self._schema(schema.get("items", True), f"{path}.items") for i in range(count)]
            return self._new("and", items)
        return self.TRUE if isinstance(kind, str) and kind in _SCALAR_TYPES else self.FALSE

    def _resolve(self, ref: str) -> Any:
        """A local `$ref`'s target ("#", "#/$defs/x", ...); None for what this check does not follow."""
        if not ref.startswith("#") or (len(ref) > 1 and ref[1] != "/"):
            return None
        node: Any = self.root
        for token in ref[2:].split("/") if len(ref) > 1 else ():
            token = urllib.parse.unquote(token).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                return None
        return node

    def productive(self) -> list[bool]:
        needs = list(self.needs)
        done = [False] * len(needs)
        ready = [n for n, need in enumerate(needs) if need == 0]
        while ready:
            node = ready.pop()
            if done[node]:
                continue
            done[node] = True
            for parent in self.parents[node]:
                needs[parent] -= 1
                if needs[parent] <= 0 and not done[parent]:
                    ready.append(parent)
        return done

    def culprit(self, done: list[bool]) -> str:
        """Where the first unsatisfiable part is, following unsatisfiable parts from the root."""
        seen: set[int] = set()
        node = self.start
        while node not in seen:
            seen.add(node)
            if node in self.refs and not done[self.refs[node][1]]:
                ref, _ = self.refs[node]
                return (f"the `$ref` {ref!r} at {_at(self.where[node])} is required, and what it refers to "
                        "requires itself again")
            stuck = [c for c in self.children[node] if not done[c]]
            if not stuck:
                break
            node = stuck[0]
        return "a part no value satisfies (`false`, an empty `enum`, or a required property of one)"


def _at(path: str | None) -> str:
    return path.lstrip(".") if path else "the schema's root"


def check_finite(schema: Any, param: str) -> None:
    """Some finite JSON value satisfies `schema` (which has passed check_shape)."""
    graph = _Productivity(schema)
    done = graph.productive()
    if not done[graph.start]:
        raise InvalidRequest(f"The schema at {param} admits no finite value: {graph.culprit(done)}.", param=param)


# -- compile cost ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Charge:
    positions: int
    param: str  # where the schema came from in the request
    path: str  # the keyword's path inside the schema, e.g. `.properties.code.pattern`


def schema_charges(schema: Any, param: str, seen: set[tuple[Any, ...]]) -> list[Charge]:
    """What `schema` adds to a grammar's cost; `seen` holds what the request's other schemas already paid
    for (identical repetitions are compiled once per grammar)."""
    charges: list[Charge] = []

    def charge(key: tuple[Any, ...], positions: int, path: str) -> None:
        if positions > 0 and key not in seen:
            seen.add(key)
            charges.append(Charge(positions, param, path))

    stack: list[tuple[Any, str]] = [(schema, "")]
    while stack:
        node, path = stack.pop()
        if not isinstance(node, dict):
            continue
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            charge(("pattern", pattern), pattern_cost(pattern).positions, f"{path}.pattern")
        pattern_properties = node.get("patternProperties")
        for key in pattern_properties if isinstance(pattern_properties, dict) else ():
            if isinstance(key, str):
                charge(("pattern", key), pattern_cost(key).positions, f"{path}.patternProperties[{key!r}]")
        low, high = node.get("minLength"), node.get("maxLength")
        if _count(low) or _count(high):
            low = low if _count(low) else 0
            high = high if _count(high) else None
            keyword = "maxLength" if high is not None else "minLength"
            charge(("length", low, high), repetition_count(low, high), f"{path}.{keyword}")
        properties = node.get("properties")
        if isinstance(properties, dict):
            required = node.get("required") if isinstance(node.get("required"), list) else []
            optional = len(properties.keys() - {r for r in required if isinstance(r, str)})
            charge(("properties", id(node)), optional * optional // 10_000, f"{path}.properties")
        stack.extend((sub, sub_path) for sub_path, sub in subschemas(node, path))
    return charges


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_grammar_budget(schemas: list[tuple[str, Any]], budget: int) -> None:
    """The request's schemas (param, schema), all compiled into one grammar, within `budget` positions."""
    seen: set[tuple[Any, ...]] = set()
    charges = [c for param, schema in schemas for c in schema_charges(schema, param, seen)]
    total = sum(c.positions for c in charges)
    if total <= budget:
        return
    worst = max(charges, key=lambda c: c.positions)
    keyword = worst.path.rsplit(".", 1)[-1].split("[", 1)[0]
    alone = worst.positions > budget
    raise InvalidRequest(
        f"The grammar for {'this schema' if alone else 'these schemas'} would be too costly to compile: "
        f"estimated {_figure(total)} positions, over this server's budget of {budget} (--grammar-budget). "
        f"The costliest part is `{keyword}` at {_at(worst.path)} in {worst.param} ({_figure(worst.positions)}): "
        "nested repetitions multiply, and every distinct length bound costs its size; simplify it.",
        param=worst.param,
    )


def _figure(positions: int) -> str:
    return f"{positions:,}" if positions < 10**9 else f"about 10^{int(math.log10(positions))}"

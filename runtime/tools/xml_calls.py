"""The incremental parser for XML-ish calls, whose arguments are written one parameter at a time.

Shared by the formats whose calls name a tool and then list `key -> value` elements: Qwen3-Coder
(`<function=NAME><parameter=KEY>VALUE</parameter>`), GLM-4.5+ (`NAME<arg_key>KEY</arg_key><arg_value>VALUE
</arg_value>`), MiniMax-M2 (`<invoke name="NAME"><parameter name="KEY">VALUE</parameter>`) and DeepSeek-V3.2's
DSML (`<｜DSML｜invoke name="NAME"><｜DSML｜parameter name="KEY" string="true">VALUE</｜DSML｜parameter>`).
Each is one `XmlSyntax`: the same strings build the format's grammar (an xgrammar structural tag whose
arguments use the matching xgrammar XML style: `qwen_xml`, `glm_xml`, `minimax_xml`, `deepseek_xml`) and
drive this parser.

What the grammar guarantees, in every style (read from the grammars xgrammar 0.2.7 builds): a `string`
parameter is raw text (anything but the value's end tag), every other type is written as JSON (`3`, `true`,
`null`, `[1, 2]`, `{"a": 1}`), with at most one whitespace character around it; between parameters, and
before the call's end, at most one whitespace character.

The parser turns this back into a JSON object typed by the tool's schema, and streams it: `{"KEY": ` as a
parameter opens, a free string value's characters (JSON-escaped) as they arrive, other values once their
element closes, `}` at the call's end. Where the syntax is `padded` (Qwen's templates write `\\nVALUE\\n`), a
string value loses one leading and one trailing newline, as Qwen's own parsers do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from runtime.stops import partial_suffix
from runtime.tools.base import CONTINUE, CallTag, ParsedEvent, new_call_id, run_steps, split_at_trigger, text_event
from runtime.tools.freeform import FREEFORM_KEY, INPUT, text_between
from runtime.tools.grammar import block_calls_format, content_calls_format, structural_tag, xml_content
from runtime.types import Tool, ToolCall, ToolCallArgs, ToolCallStart, ToolChoice


@dataclass(frozen=True, slots=True)
class XmlSyntax:
    """How one family writes XML-ish calls. A block opens at `block_open` and holds calls; each call is
    `call_open`, the tool's name (up to one of `name_stops`), `name_close`, the parameters, `call_close`; the
    block ends at `block_close` ("" where the call's close ends the block too). A parameter is `key_open`, its
    key (up to one of `key_stops`), the text up to and including `value_open` (templates write `key_close`
    there), the value, `value_close`."""

    block_open: str
    block_close: str
    call_open: str
    name_stops: str
    name_close: str
    call_close: str
    key_open: str
    key_stops: str
    value_open: str
    value_close: str
    style: str  # the xgrammar JSON-schema style that writes these parameters
    padded: bool = False  # string values are written `\nVALUE\n`
    key_close: str = ""

    def call(self, name: str, arguments: dict[str, Any], key_close: Callable[[Any], str] | None = None,
             newline: str = "\n") -> str:
        """One call as the family's template writes it (strings raw, every other value as JSON), without
        the block around it. `key_close(value)`, when given, writes what follows a key (DSML's
        `" string="true`); `newline` is what the template writes between the elements."""
        params = []
        for key, value in arguments.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            if self.padded:
                text = f"\n{text}\n"
            after_key = key_close(value) if key_close else self.key_close
            params.append(f"{self.key_open}{key}{after_key}{self.value_open}{text}{self.value_close}{newline}")
        return f"{self.call_open}{name}{self.name_close}{newline}{''.join(params)}{self.call_close}"


# -- what a parameter's schema admits -----------------------------------------------------------------------

_ANY_XML = frozenset({"string", "array", "object"})  # what the grammar allows for an unconstrained value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _admitted(schema: Any, root: dict[str, Any], seen: frozenset[str] = frozenset()) -> frozenset[str] | None:
    """The JSON types a schema admits; None when it does not say (anything goes)."""
    if not isinstance(schema, dict):
        return None if schema is not False else frozenset()
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            return None
        target = _ref_target(ref, root)
        return _admitted(target, root, seen | {ref}) if target is not None else None
    if "const" in schema:
        return frozenset({_json_type(schema["const"])})
    if isinstance(schema.get("enum"), list):
        return frozenset(_json_type(v) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, str):
        return frozenset({kind})
    if isinstance(kind, list):
        return frozenset(str(k) for k in kind)
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            out: set[str] = set()
            for branch in schema[key]:
                types = _admitted(branch, root, seen)
                if types is None:
                    return None
                out |= types
            return frozenset(out)
    if isinstance(schema.get("allOf"), list):
        for branch in schema["allOf"]:
            types = _admitted(branch, root, seen)
            if types is not None:
                return types
    if "properties" in schema or "additionalProperties" in schema:
        return frozenset({"object"})
    if "items" in schema or "prefixItems" in schema:
        return frozenset({"array"})
    return None


def _fits(value: Any, types: frozenset[str]) -> bool:
    kind = _json_type(value)
    return kind in types or (kind == "integer" and "number" in types)


_STRING_BOUNDS = ("minLength", "maxLength", "pattern", "format")
_XML_WHITESPACE = " \n\r\t"


def _ref_target(ref: str, root: dict[str, Any]) -> Any:
    """What a local `$ref` (`#` or a `#/...` JSON pointer) points at in `root`; None for anything else."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return None
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
    return target


def _resolve(schema: Any, root: dict[str, Any]) -> Any:
    """A local `$ref` followed (one level, which is how tool schemas name a shared string type)."""
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    return _ref_target(ref, root) if isinstance(ref, str) else schema


@dataclass(frozen=True, slots=True)
class _Bounds:
    """What a bounded string's text must meet: the bounds of its schema and of every allOf branch at once."""

    min_length: int = 0
    max_length: int | None = None
    patterns: tuple[str, ...] = ()

    @classmethod
    def of(cls, schemas: list[dict[str, Any]]) -> _Bounds:
        lows = [n for sch in schemas if isinstance(n := sch.get("minLength"), int)]
        highs = [n for sch in schemas if isinstance(n := sch.get("maxLength"), int)]
        return cls(max(lows, default=0), min(highs, default=None),
                   tuple(p for sch in schemas if isinstance(p := sch.get("pattern"), str)))

    def fit(self, text: str) -> bool:
        if len(text) < self.min_length or (self.max_length is not None and len(text) > self.max_length):
            return False
        for pattern in self.patterns:
            try:
                if re.search(pattern, text) is None:
                    return False
            except re.error:  # an ECMA-only construct: the grammar enforced it; nothing to choose by here
                pass
        return True


def _bounded_string_value(text: str, bounds: _Bounds) -> str:
    """A bounded string's value out of its element's text. xgrammar writes such a value (length bounds,
    pattern or format) as `ws? value ws?` with at most one whitespace character each side, where a free
    string is raw text: the value is the first reading of the text that meets the bounds, preferring the one
    without the whitespace (Qwen's template writes `\nvalue\n`)."""
    lead = 1 if text[:1] and text[0] in _XML_WHITESPACE else 0
    trail = 1 if len(text) > lead and text[-1] in _XML_WHITESPACE else 0
    candidates = [text[lead:len(text) - trail], text[lead:], text[:len(text) - trail], text]
    return next((c for c in candidates if bounds.fit(c)), candidates[0])


def _with_all_of(schema: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema and its allOf branches (resolved): what all hold of one value."""
    branches = schema.get("allOf") if isinstance(schema.get("allOf"), list) else []
    return [schema] + [b for b in (_resolve(b, root) for b in branches) if isinstance(b, dict)]


def _string_bounds(schema: Any, root: dict[str, Any]) -> _Bounds | None:
    """The bounds a value's text is read against: the schema's own with its allOf branches', or else the first
    bounded string branch of its anyOf / oneOf."""
    resolved = _resolve(schema, root)
    if not isinstance(resolved, dict):
        return None
    together = _with_all_of(resolved, root)
    if any(k in part for part in together for k in _STRING_BOUNDS):
        return _Bounds.of(together)
    for key in ("anyOf", "oneOf"):
        for branch in resolved.get(key) or ():
            branch = _resolve(branch, root)
            if isinstance(branch, dict) and any(k in part for part in _with_all_of(branch, root)
                                                for k in _STRING_BOUNDS):
                return _Bounds.of(_with_all_of(branch, root))
    return None


def _allowed_strings(schema: Any, root: dict[str, Any]) -> list[str]:
    """The enum / const strings of a schema and of its anyOf / oneOf / allOf branches."""
    out: list[str] = []
    resolved = _resolve(schema, root)
    if not isinstance(resolved, dict):
        return out
    branches = _with_all_of(resolved, root) + [_resolve(b, root) for key in ("anyOf", "oneOf")
                                               for b in (resolved.get(key) or ())]
    for branch in branches:
        if isinstance(branch, dict):
            values = branch.get("enum") if isinstance(branch.get("enum"), list) else (
                [branch["const"]] if "const" in branch else [])
            out.extend(v for v in values if isinstance(v, str))
    return out


def _strip_newlines(text: str) -> str:
    """A padded syntax's formatting around a string value: one newline after `>` and one before `</`."""
    if text.startswith("\n"):
        text = text[1:]
    if text.endswith("\n"):
        text = text[:-1]
    return text


class _Parameter:
    """How one parameter's value text becomes JSON."""

    def __init__(self, schema: Any, root: dict[str, Any], padded: bool) -> None:
        self.schema = schema
        self.padded = padded
        types = _admitted(schema, root)
        self.types = _ANY_XML if types is None else types
        # A string with bounds is written with optional whitespace around it (see _bounded_string_value),
        # also where it is one branch of an anyOf (a nullable bounded string).
        self.bounded = _string_bounds(schema, root)
        # Enum and const strings, also as anyOf / oneOf branches: written with optional whitespace around them.
        self.allowed = _allowed_strings(schema, root)
        # Free text: streamed. Enum/const and bounded strings are written with optional whitespace around them,
        # so they are read whole.
        self.streamed = self.types == {"string"} and self.bounded is None and not self.allowed

    def value(self, text: str) -> Any:
        if self.allowed:
            for candidate in (text, self.free_text(text), text.strip()):
                if candidate in self.allowed:
                    return candidate
        stripped = text.strip()
        if self.types != {"string"} and stripped:
            try:
                # Raw control characters in strings allowed; NaN/Infinity (and numbers that overflow to
                # them) are not JSON, so such a value stays text.
                value = json.loads(stripped, strict=False, parse_constant=_not_json, parse_float=_finite)
            except ValueError:
                pass
            else:
                if _fits(value, self.types):
                    return value
        if self.bounded is not None:
            return _bounded_string_value(text, self.bounded)
        return self.free_text(text)

    def free_text(self, text: str) -> str:
        return _strip_newlines(text) if self.padded else text


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} overflows a double")
    return value


class XmlCallParser:
    """Incremental parser for XML-ish calls in one `XmlSyntax`: text, then per call a ToolCallStart and
    argument fragments that join into the arguments as a JSON object."""

    _TEXT, _CALLS, _HEAD, _PARAMS, _VALUE = range(5)

    def __init__(self, syntax: XmlSyntax, tools: tuple[Tool, ...], freeform_ends: dict[str, str] | None = None
                 ) -> None:
        """`freeform_ends`: per freeform tool, what its grammar writes after the input, from the value's end
        tag to the call's end: the input ends only there, so it may itself contain the value's end tag."""
        self._syntax = syntax
        self._tools = {t.name: t for t in tools}
        self._freeform_ends = freeform_ends or {}
        self._value_end = syntax.value_close  # what ends the current value
        self._buffer = ""
        self._state = self._TEXT
        self._calls = 0
        self._block_calls = 0  # calls completed in the current block
        self._parameters: dict[str, Any] = {}
        self._extra: Any = None  # the schema of parameters not listed in `properties`
        self._root: dict[str, Any] = {}
        self._count = 0  # parameters written in the current call
        self._param: _Parameter | None = None
        self._value_started = False

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def in_call(self) -> bool:
        return self._state != self._TEXT

    def feed(self, text: str) -> Iterator[ParsedEvent]:
        self._buffer += text
        steps = {self._TEXT: self._scan_text, self._CALLS: self._scan_calls, self._HEAD: self._scan_head,
                 self._PARAMS: self._scan_params, self._VALUE: self._scan_value}
        yield from run_steps(lambda: steps[self._state]())

    def finish(self, cut_off: bool = False) -> Iterator[ParsedEvent]:
        """End of output. Text still held back (a possible trigger's start) is released, or dropped when
        `cut_off`; an unfinished call stays unfinished (a block whose last call closed counts as finished
        even without the block's close)."""
        if self._state == self._CALLS and self._block_calls:
            self._state, self._buffer = self._TEXT, ""
        if self._state == self._TEXT and self._buffer:
            rest, self._buffer = self._buffer, ""
            if not cut_off and (event := text_event(rest, self._calls)) is not None:
                yield event

    # -- states -------------------------------------------------------------------------------------------

    def _skip_space(self) -> bool:
        """Drop leading whitespace; False when nothing else is buffered yet."""
        self._buffer = self._buffer.lstrip(" \t\r\n")
        return bool(self._buffer)

    def _scan_text(self) -> ParsedEvent | object | None:
        opener = self._syntax.block_open
        text, self._buffer, at_trigger = split_at_trigger(self._buffer, (opener,), self._calls)
        if not at_trigger:
            return text_event(text, self._calls)  # None: wait for more
        self._buffer = self._buffer[len(opener):]
        self._state, self._block_calls = self._CALLS, 0
        return text_event(text, self._calls) or CONTINUE

    def _scan_calls(self) -> ParsedEvent | object | None:
        """Inside a block, before a call or the block's close."""
        s = self._syntax
        if not self._skip_space():
            return None
        if self._block_calls and s.block_close:
            if self._buffer.startswith(s.block_close):
                self._buffer = self._buffer[len(s.block_close):]
                self._state = self._TEXT
                return CONTINUE
            if s.block_close.startswith(self._buffer):
                return None
        if self._buffer.startswith(s.call_open):
            self._buffer = self._buffer[len(s.call_open):]
            self._state = self._HEAD
            return CONTINUE
        if s.call_open.startswith(self._buffer):
            return None
        # Not a call after all (only possible without the grammar): the block's opening is text.
        self._state = self._TEXT
        if self._block_calls:
            return CONTINUE
        return text_event(s.block_open, self._calls) or CONTINUE

    def _scan_head(self) -> ParsedEvent | object | None:
        s = self._syntax
        end = next((i for i, ch in enumerate(self._buffer) if ch in s.name_stops), -1)
        if end < 0:
            return None
        rest = self._buffer[end:]
        if s.name_close and not rest.startswith(s.name_close):
            if s.name_close.startswith(rest):
                return None
        name = self._buffer[:end]
        self._buffer = rest[len(s.name_close):] if rest.startswith(s.name_close) else rest
        tool = self._tools.get(name)
        self._root = tool.parameters if tool is not None else {}
        self._parameters = self._root.get("properties") or {}
        self._extra = self._root.get("additionalProperties")
        self._count = 0
        self._value_end = self._freeform_ends.get(name, s.value_close)
        self._state = self._PARAMS
        return ToolCallStart(self._calls, new_call_id(), name)

    def _scan_params(self) -> ParsedEvent | object | None:
        s = self._syntax
        if not self._skip_space():
            return None
        index = self._calls
        if self._buffer.startswith(s.key_open):
            stop = next((i for i in range(len(s.key_open), len(self._buffer)) if self._buffer[i] in s.key_stops), -1)
            opened = self._buffer.find(s.value_open, stop) if stop >= 0 else -1
            if opened < 0:
                return None
            key, self._buffer = self._buffer[len(s.key_open):stop], self._buffer[opened + len(s.value_open):]
            schema = self._parameters.get(key, self._extra if isinstance(self._extra, dict) else None)
            self._param = _Parameter(schema, self._root, s.padded)
            self._value_started = False
            self._state = self._VALUE
            fragment = ("{" if self._count == 0 else ", ") + json.dumps(key, ensure_ascii=False) + ": "
            self._count += 1
            return ToolCallArgs(index, fragment)
        if self._buffer.startswith(s.call_close):
            self._buffer = self._buffer[len(s.call_close):]
            self._calls += 1
            self._block_calls += 1
            self._state = self._CALLS if s.block_close else self._TEXT
            return ToolCallArgs(index, "{}" if self._count == 0 else "}")
        if s.key_open.startswith(self._buffer) or s.call_close.startswith(self._buffer):
            return None
        # Stray text inside a call (only possible without the grammar): skip to the next tag.
        at = self._buffer.find("<", 1)
        self._buffer = self._buffer[at:] if at > 0 else ""
        return CONTINUE

    def _scan_value(self) -> ParsedEvent | object | None:
        assert self._param is not None
        close = self._value_end
        index = self._calls
        at = self._buffer.find(close)
        if not self._param.streamed:
            if at < 0:
                return None
            text, self._buffer = self._buffer[:at], self._buffer[at + len(self._syntax.value_close):]
            self._state = self._PARAMS
            return ToolCallArgs(index, json.dumps(self._param.value(text), ensure_ascii=False))
        padded = self._syntax.padded
        opening = ""
        if not self._value_started:
            if not self._buffer:
                return None
            if padded and self._buffer.startswith("\n"):
                self._buffer = self._buffer[1:]
                at = at - 1 if at > 0 else at
            self._value_started = True
            opening = '"'
        if at < 0:
            # Hold back what may be the end tag (and, padded, a newline that may be the one before it).
            keep = partial_suffix(self._buffer, close)
            if padded:
                keep = max(keep, partial_suffix(self._buffer, "\n" + close))
            out = self._buffer[: len(self._buffer) - keep]
            self._buffer = self._buffer[len(out):]
            fragment = opening + _escape(out)
            return ToolCallArgs(index, fragment) if fragment else None
        text, self._buffer = self._buffer[:at], self._buffer[at + len(self._syntax.value_close):]
        if padded and text.endswith("\n"):
            text = text[:-1]
        self._state = self._PARAMS
        return ToolCallArgs(index, opening + _escape(text) + '"')


_MARK = "\x00freeform input\x00"  # stands for the input text in a rendered call (no template writes NULs)


def _escape(text: str) -> str:
    """`text` as the inside of a JSON string (escapes are per character, so chunks can be escaped apart)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


class XmlFormat:
    """What the XML-ish formats share: the parser, and the grammar built from the same `syntax`. Where
    `shared_block`, a response's calls form one block (`block_open\\n`, the invokes, `block_close`); otherwise
    each call is its own element, and `tags` include the opening. `separator` goes between calls."""

    syntax: XmlSyntax
    shared_block: bool = False
    separator: str = ""

    def tags(self, tools: tuple[Tool, ...]) -> list[CallTag]:
        s = self.syntax
        return [CallTag(t.name, f"{s.call_open}{t.name}{s.name_close}\n", s.call_close + "\n") for t in tools]

    def parser(self, tools: tuple[Tool, ...]) -> XmlCallParser:
        ends = {}
        for tag in self.tags(tuple(t for t in tools if t.freeform_grammar is not None)):
            after = self.freeform_parameter(tag)[1]
            ends[tag.name] = after[after.index(self.syntax.value_close):] + tag.end
        return XmlCallParser(self.syntax, tools, ends)

    def structural_tag(self, tools: tuple[Tool, ...], schemas: dict[str, Any], choice: ToolChoice,
                       text_schema: dict[str, Any] | None) -> dict[str, Any]:
        s = self.syntax
        tags = self.tags(tools)
        by_name = {t.name: t for t in tags}

        def content(name: str) -> dict[str, Any]:
            if FREEFORM_KEY in schemas[name]:
                before, after = self.freeform_parameter(by_name[name])
                return text_between(before, schemas[name][FREEFORM_KEY], after)
            return xml_content(schemas[name], s.style)

        if self.shared_block:
            return structural_tag(block_calls_format(
                tags, content, choice, block_begin=s.block_open + "\n", block_end=s.block_close,
                trigger=s.block_open, separator=self.separator, text_schema=text_schema))
        return structural_tag(content_calls_format(tags, content, choice, triggers=[s.block_open],
                                                   separator=self.separator, text_schema=text_schema))

    def freeform_parameter(self, tag: CallTag) -> tuple[str, str]:
        """What a freeform tool's call holds around its raw `input` text, between the call's `tag` begin and
        end: (before, after), read off the call as `render_calls` writes it, so the grammar asks for exactly
        what the template writes (Qwen's newline padding, DSML's `string="true"`, GLM's separators)."""
        call = self.render_calls((ToolCall("call_freeform", tag.name, {INPUT: _MARK}),))
        start = call.index(tag.begin) + len(tag.begin)
        mark = call.index(_MARK, start)
        return call[start:mark], call[mark + len(_MARK):call.index(tag.end, mark)]

    def key_close(self, value: Any) -> str:
        """What the template writes after a parameter's key (DSML's depends on the value's type)."""
        return self.syntax.key_close

    def render_calls(self, calls: tuple[ToolCall, ...]) -> str:
        """A shared block's calls as the template writes them."""
        if not calls:
            return ""
        s = self.syntax
        return f"{s.block_open}\n" + "".join(s.call(c.name, c.arguments, self.key_close) + "\n" for c in calls) \
            + s.block_close

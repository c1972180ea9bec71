"""Qwen3-Coder XML tool calls:

    <tool_call>
    <function=NAME>
    <parameter=KEY>
    VALUE
    </parameter>
    ...
    </function>
    </tool_call>

The arguments are not JSON: each parameter is an XML-ish element whose text is the value. The grammar is
xgrammar's JSON schema in its "qwen_xml" style, which keeps the tool's schema: a `string` parameter is raw
text (anything but `</parameter>`), every other type is written as JSON (`3`, `true`, `null`, `[1, 2]`,
`{"a": 1}`), with at most one whitespace character around it. Between calls the template writes `\n`.

The parser turns this back into a JSON object, typed by the tool's schema, and streams it: `{"KEY": ` as
a parameter opens, a string value's characters (JSON-escaped) as they arrive, other values once their
element closes, `}` at `</function>`. As Qwen's templates and parsers do, a string value loses one
leading and one trailing newline (the template's own formatting).
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

from runtime.stops import partial_suffix
from runtime.tools.base import CallTag, ParsedEvent, new_call_id, split_at_trigger, text_event
from runtime.tools.grammar import content_calls_format, structural_tag, xml_content
from runtime.types import Tool, ToolCall, ToolCallArgs, ToolCallStart, ToolChoice

TRIGGER = "<tool_call>"
FUNCTION = "<function="
FUNCTION_END = "</function>"
CALL_END = "</tool_call>"
PARAMETER = "<parameter="
PARAMETER_END = "</parameter>"
SEPARATOR = "\n"


class Qwen3CoderFormat:
    name = "qwen3_coder"
    keeps_special_tokens = False

    def trigger(self) -> str:
        return TRIGGER

    def separator(self) -> str:
        return SEPARATOR

    def tags(self, tools: tuple[Tool, ...]) -> list[CallTag]:
        # The end starts at `</function>` (not at the newline before it, as xgrammar's preset does) so that
        # a call without parameters can be written the way Qwen's template writes it: `<function=f>\n</function>`.
        return [CallTag(t.name, f"{TRIGGER}\n{FUNCTION}{t.name}>\n", f"{FUNCTION_END}\n{CALL_END}") for t in tools]

    def parser(self, tools: tuple[Tool, ...]) -> Qwen3CoderParser:
        return Qwen3CoderParser(tools)

    def structural_tag(self, tools: tuple[Tool, ...], schemas: dict[str, Any], choice: ToolChoice,
                       text_schema: dict[str, Any] | None) -> dict[str, Any]:
        return structural_tag(content_calls_format(
            self.tags(tools), lambda name: xml_content(schemas[name]), choice,
            triggers=[TRIGGER], separator=SEPARATOR, text_schema=text_schema))

    def render_calls(self, calls: tuple[ToolCall, ...]) -> str:
        return SEPARATOR.join(render_call(c.name, c.arguments) for c in calls)

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        # Qwen3-Coder's own wording, so a model trained on it recognises the instructions.
        functions = []
        for t in tools:
            params = []
            for key, schema in (t.parameters.get("properties") or {}).items():
                schema = schema if isinstance(schema, dict) else {}
                extra = {k: v for k, v in schema.items() if k not in ("type", "description")}
                params.append(
                    f"<parameter>\n<name>{key}</name>\n<type>{_type_text(schema)}</type>\n"
                    f"<description>{schema.get('description', '')}</description>\n"
                    + "".join(f"<{k}>{json.dumps(v, ensure_ascii=False)}</{k}>\n" for k, v in extra.items())
                    + "</parameter>"
                )
            required = t.parameters.get("required")
            functions.append(
                f"<function>\n<name>{t.name}</name>\n<description>{t.description}</description>\n"
                "<parameters>\n" + "\n".join(params) + ("\n" if params else "")
                + (f"<required>{json.dumps(required)}</required>\n" if required else "")
                + "</parameters>\n</function>"
            )
        return (
            "# Tools\n\nYou have access to the following functions:\n\n<tools>\n" + "\n".join(functions)
            + "\n</tools>\n\n"
            "If you choose to call a function ONLY reply in the following format with NO suffix:\n\n"
            "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n"
            "</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second parameter\n"
            "that can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n"
            "<IMPORTANT>\nReminder:\n"
            "- Function calls MUST follow the specified format: an inner <function=...></function> block must "
            "be nested within <tool_call></tool_call> XML tags\n"
            "- Required parameters MUST be specified\n"
            "- You may provide optional reasoning for your function call in natural language BEFORE the "
            "function call, but NOT after\n"
            "- If there is no function call available, answer the question like normal with your current "
            "knowledge and do not tell the user about function calls\n</IMPORTANT>"
        )

    def render_tool_result(self, content: str) -> str:
        return f"<tool_response>\n{content}\n</tool_response>"


def render_call(name: str, arguments: dict[str, Any]) -> str:
    """One call as Qwen3-Coder writes it: strings raw, every other value as JSON."""
    params = "".join(
        f"{PARAMETER}{key}>\n{value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}\n"
        f"{PARAMETER_END}\n"
        for key, value in arguments.items()
    )
    return f"{TRIGGER}\n{FUNCTION}{name}>\n{params}{FUNCTION_END}\n{CALL_END}"


def _type_text(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    return str(kind) if kind else "any"


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


def _fits_bounds(text: str, schema: dict[str, Any]) -> bool:
    if len(text) < schema.get("minLength", 0) or len(text) > schema.get("maxLength", len(text)):
        return False
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            return re.search(pattern, text) is not None
        except re.error:  # an ECMA-only construct: the grammar enforced it; nothing to choose by here
            return True
    return True


def _bounded_string_value(text: str, schema: dict[str, Any]) -> str:
    """A bounded string's value out of its element's text. xgrammar writes such a value (length bounds,
    pattern or format) as `ws? value ws?` with at most one whitespace character each side, where a free
    string is raw text: the value is the first reading of the text that meets the bounds, preferring the one
    without the whitespace (Qwen's template writes `\nvalue\n`)."""
    lead = 1 if text[:1] and text[0] in _XML_WHITESPACE else 0
    trail = 1 if len(text) > lead and text[-1] in _XML_WHITESPACE else 0
    candidates = [text[lead:len(text) - trail], text[lead:], text[:len(text) - trail], text]
    return next((c for c in candidates if _fits_bounds(c, schema)), candidates[0])


def _strip_newlines(text: str) -> str:
    """The template's formatting around a string value: one newline after `>` and one before `</`."""
    if text.startswith("\n"):
        text = text[1:]
    if text.endswith("\n"):
        text = text[:-1]
    return text


class _Parameter:
    """How one parameter's value text becomes JSON."""

    def __init__(self, schema: Any, root: dict[str, Any]) -> None:
        self.schema = schema
        types = _admitted(schema, root)
        self.types = _ANY_XML if types is None else types
        resolved = _resolve(schema, root)
        # A string with bounds is written with optional whitespace around it (see _bounded_string_value).
        self.bounded = resolved if isinstance(resolved, dict) and any(k in resolved for k in _STRING_BOUNDS) else None
        # Free text: streamed. Enum/const and bounded strings are written with optional whitespace around them,
        # so they are read whole.
        self.streamed = self.types == {"string"} and self.bounded is None and not (
            isinstance(schema, dict) and ("enum" in schema or "const" in schema))

    def value(self, text: str) -> Any:
        if isinstance(self.schema, dict) and ("enum" in self.schema or "const" in self.schema):
            allowed = self.schema.get("enum") if "enum" in self.schema else [self.schema["const"]]
            for candidate in (text, _strip_newlines(text), text.strip()):
                if candidate in allowed:
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
        return _strip_newlines(text)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} overflows a double")
    return value


class Qwen3CoderParser:
    """Incremental parser for Qwen3-Coder XML calls: text, then per call a ToolCallStart and argument
    fragments that join into the arguments as a JSON object."""

    _TEXT, _HEAD, _PARAMS, _VALUE, _TAIL = range(5)

    def __init__(self, tools: tuple[Tool, ...]) -> None:
        self._tools = {t.name: t for t in tools}
        self._buffer = ""
        self._state = self._TEXT
        self._calls = 0
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
        steps = {self._TEXT: self._scan_text, self._HEAD: self._scan_head, self._PARAMS: self._scan_params,
                 self._VALUE: self._scan_value, self._TAIL: self._scan_tail}
        while True:
            event = steps[self._state]()
            if event is None:
                return
            if event is not _CONTINUE:
                yield event

    def finish(self, cut_off: bool = False) -> Iterator[ParsedEvent]:
        """End of output. Text still held back (a possible trigger's start) is released, or dropped when
        `cut_off`; an unfinished call stays unfinished (a call whose `</function>` arrived counts as finished
        even without its `</tool_call>`)."""
        if self._state == self._TAIL:
            self._calls += 1
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
        text, self._buffer, at_trigger = split_at_trigger(self._buffer, (TRIGGER,), self._calls)
        if not at_trigger:
            return text_event(text, self._calls)  # None: wait for more
        self._buffer = self._buffer[len(TRIGGER):]
        self._state = self._HEAD
        return text_event(text, self._calls) or _CONTINUE

    def _scan_head(self) -> ParsedEvent | object | None:
        if not self._skip_space():
            return None
        if not self._buffer.startswith(FUNCTION):
            if FUNCTION.startswith(self._buffer):
                return None
            # Not a call after all (only possible without the grammar): what followed the trigger is text.
            self._state = self._TEXT
            return text_event(TRIGGER, self._calls) or _CONTINUE
        close = self._buffer.find(">")
        if close < 0:
            return None
        name, self._buffer = self._buffer[len(FUNCTION):close], self._buffer[close + 1:]
        tool = self._tools.get(name)
        self._root = tool.parameters if tool is not None else {}
        self._parameters = self._root.get("properties") or {}
        self._extra = self._root.get("additionalProperties")
        self._count = 0
        self._state = self._PARAMS
        return ToolCallStart(self._calls, new_call_id(), name)

    def _scan_params(self) -> ParsedEvent | object | None:
        if not self._skip_space():
            return None
        index = self._calls
        if self._buffer.startswith(PARAMETER):
            close = self._buffer.find(">")
            if close < 0:
                return None
            key, self._buffer = self._buffer[len(PARAMETER):close], self._buffer[close + 1:]
            schema = self._parameters.get(key, self._extra if isinstance(self._extra, dict) else None)
            self._param = _Parameter(schema, self._root)
            self._value_started = False
            self._state = self._VALUE
            fragment = ("{" if self._count == 0 else ", ") + json.dumps(key, ensure_ascii=False) + ": "
            self._count += 1
            return ToolCallArgs(index, fragment)
        if self._buffer.startswith(FUNCTION_END):
            self._buffer = self._buffer[len(FUNCTION_END):]
            self._state = self._TAIL
            return ToolCallArgs(index, "{}" if self._count == 0 else "}")
        if PARAMETER.startswith(self._buffer) or FUNCTION_END.startswith(self._buffer):
            return None
        # Stray text inside a call (only possible without the grammar): skip to the next tag.
        at = self._buffer.find("<", 1)
        self._buffer = self._buffer[at:] if at > 0 else ""
        return _CONTINUE

    def _scan_value(self) -> ParsedEvent | object | None:
        assert self._param is not None
        index = self._calls
        at = self._buffer.find(PARAMETER_END)
        if not self._param.streamed:
            if at < 0:
                return None
            text, self._buffer = self._buffer[:at], self._buffer[at + len(PARAMETER_END):]
            self._state = self._PARAMS
            return ToolCallArgs(index, json.dumps(self._param.value(text), ensure_ascii=False))
        opening = ""
        if not self._value_started:
            if not self._buffer:
                return None
            if self._buffer.startswith("\n"):
                self._buffer = self._buffer[1:]
                at = at - 1 if at > 0 else at
            self._value_started = True
            opening = '"'
        if at < 0:
            # Hold back what may be the end tag, and a newline that may be the one before it.
            keep = max(partial_suffix(self._buffer, "\n" + PARAMETER_END),
                       partial_suffix(self._buffer, PARAMETER_END))
            out = self._buffer[: len(self._buffer) - keep]
            self._buffer = self._buffer[len(out):]
            fragment = opening + _escape(out)
            return ToolCallArgs(index, fragment) if fragment else None
        text, self._buffer = self._buffer[:at], self._buffer[at + len(PARAMETER_END):]
        if text.endswith("\n"):
            text = text[:-1]
        self._state = self._PARAMS
        return ToolCallArgs(index, opening + _escape(text) + '"')

    def _scan_tail(self) -> ParsedEvent | object | None:
        if not self._skip_space():
            return None
        if self._buffer.startswith(CALL_END):
            self._buffer = self._buffer[len(CALL_END):]
        elif CALL_END.startswith(self._buffer):
            return None
        self._calls += 1
        self._state = self._TEXT
        return _CONTINUE


_CONTINUE = object()


def _escape(text: str) -> str:
    """`text` as the inside of a JSON string (escapes are per character, so chunks can be escaped apart)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


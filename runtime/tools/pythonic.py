"""Pythonic tool calls (Llama 3.2, Llama 4): a Python list of calls with keyword arguments as Python literals.

    [get_weather(city="Paris", days=3), search(query="x", filters={"lang": "fr"}, exact=True, note=None)]

The name is vLLM's (`--tool-call-parser pythonic`). The models' own templates describe the form as
`[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]`.

The grammar: one block, `[`, calls separated by `, `, `]`, as the block formats build it (free text, then at most
one block, which ends the output). Each call is `NAME(` + keyword arguments + `)`. The arguments' grammar is
built from the tool's schema: xgrammar's JSON-schema grammar for each parameter's value (printed as EBNF, its rules
renamed per parameter), with JSON's literals turned into Python's (`true` -> `True`, `false` -> `False`, `null`
-> `None`, const objects and arrays rewritten the same way); the parameters follow the schema's order, required
ones present, as xgrammar orders a JSON object's. A JSON value is then also a Python literal with the same
meaning, except the `\\/` escape, which Python reads as two characters: the grammar leaves it out. Strings are
double-quoted, as JSON's are; keyword separators are exactly `=` and `, `.

Relaxed (docs/tool-formats.md): only declared properties can be passed (`additionalProperties` schemas are not
applied), and a property name is written as it is even where it is no Python identifier (`file-path=`) - a Python
parser would refuse it, ours reads it. In `auto` mode the block's trigger is `[`: free text cannot contain a `[`
that does not open calls. A freeform tool's `input="..."` follows its grammar, escaped as JSON escapes (which Python
reads the same way).

The parser streams each call's arguments as a JSON object: `{`, then `"KEY": ` as each keyword arrives, the
value's characters as they arrive (Python's `True`/`False`/`None` written as JSON's), `}` at the call's `)`.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Iterator

from runtime.tools.base import (CONTINUE, CallTag, JsonStringEscaper, ParsedEvent, new_call_id, run_steps,
                                split_at_trigger, text_event)
from runtime.tools.freeform import FREEFORM_KEY, INPUT, json_string_grammar, text_between
from runtime.tools.grammar import MAX_WHITESPACE, block_calls_format, structural_tag
from runtime.types import Tool, ToolCall, ToolCallArgs, ToolCallStart, ToolChoice, ToolChoiceMode

TRIGGER = "["
BLOCK_END = "]"
SEPARATOR = ", "
_PYTHON_WORDS = {"True": "true", "False": "false", "None": "null"}


def python_literal(value: Any) -> str:
    """A JSON value as a Python literal: the text json.dumps writes, with Python's words for its literals."""
    if value is None or isinstance(value, bool):
        return {None: "None", True: "True", False: "False"}[value]
    if isinstance(value, list):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {python_literal(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False)


def render_call(call: ToolCall) -> str:
    return f"{call.name}(" + SEPARATOR.join(f"{k}={python_literal(v)}" for k, v in call.arguments.items()) + ")"


# -- grammar ------------------------------------------------------------------------------------------------

_RULE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*) ::= (.*)$")
# A string literal, a character class, or an identifier, in xgrammar's printed EBNF.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]|[A-Za-z_][A-Za-z0-9_]*')


def _pythonic_literal(token: str) -> str:
    """An EBNF string literal that is a whole JSON value (`"true"`, `"{\\"a\\":true}"`) as the Python literal;
    any other literal (punctuation, part of a value) unchanged."""
    try:
        value = json.loads(json.loads(token))
    except (ValueError, TypeError):
        return token
    if isinstance(value, (bool, list, dict)) or value is None:
        return json.dumps(python_literal(value), ensure_ascii=False)
    return token


def _value_rules(schema: dict[str, Any], prefix: str) -> tuple[str, dict[str, str]]:
    """For one parameter's schema, xgrammar's JSON grammar rewritten to Python literals: (the rule its value
    starts at, the rules by name: its own renamed with `prefix`, the shared `basic_` ones as they are)."""
    return _value_rules_cached(json.dumps(schema, sort_keys=True), prefix)


@lru_cache(maxsize=1024)
def _value_rules_cached(schema_json: str, prefix: str) -> tuple[str, dict[str, str]]:
    import xgrammar as xgr

    printed = str(xgr.Grammar.from_json_schema(schema_json, any_whitespace=True, max_whitespace_cnt=MAX_WHITESPACE))
    rules = {}
    for line in printed.splitlines():
        if (m := _RULE.match(line)) is not None:
            rules[m.group(1)] = m.group(2)

    def rename(name: str) -> str:
        return name if name.startswith("basic_") else f"{prefix}_{name}"

    def rewrite(body: str) -> str:
        in_regex = body.startswith("Regex(")  # a pattern's text is a regex, never a JSON value

        def token(m: re.Match[str]) -> str:
            text = m.group(0)
            if text.startswith('"'):
                return text if in_regex else _pythonic_literal(text)
            if text.startswith("["):
                # A string ends before `)` too (the call's end), and never with JSON's `\/` escape.
                return {r"[,}\]:]": r"[,}\]:)]", r'[\"\\/bfnrt]': r'[\"\\bfnrt]'}.get(text, text)
            return rename(text) if text in rules else text

        return _TOKEN.sub(token, body)

    return rename("root"), {rename(name): rewrite(body) for name, body in rules.items()}


def _parameter_schema(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema on its own, with the definitions of the tool's schema its `$ref`s may point at."""
    out = dict(schema) if isinstance(schema, dict) else {}
    for key in ("$defs", "definitions"):
        if key in root and key not in out:
            out[key] = root[key]
    return out


def arguments_grammar(schema: dict[str, Any]) -> str:
    """EBNF for a call's keyword arguments (what comes between `NAME(` and `)`) under the tool's schema."""
    schema = {k: v for k, v in schema.items() if k != FREEFORM_KEY}
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    names = list(properties)
    rules: dict[str, str] = {}
    for i, name in enumerate(names):
        start, value_rules = _value_rules(_parameter_schema(properties[name], schema), f"p{i}")
        rules.update(value_rules)
        rules[f"arg_{i}"] = f"{json.dumps(name + '=', ensure_ascii=False)} {start}"
    # Like xgrammar's object: `first_i` is the first argument written from parameter i on, `rest_i` those after
    # it (each with its separator); an optional parameter may be skipped, a required one not.
    rules[f"first_{len(names)}"] = rules[f"rest_{len(names)}"] = '""'
    for i in reversed(range(len(names))):
        skip = names[i] not in required
        rules[f"first_{i}"] = f"(arg_{i} rest_{i + 1})" + (f" | first_{i + 1}" if skip else "")
        rules[f"rest_{i}"] = f'("{SEPARATOR}" arg_{i} rest_{i + 1})' + (f" | rest_{i + 1}" if skip else "")
    return "\n".join([f"root ::= first_0", *(f"{name} ::= {body}" for name, body in rules.items())])


def _call_begin(name: str) -> str:
    return f"{name}("


class PythonicFormat:
    name = "pythonic"
    keeps_special_tokens = False

    def tags(self, tools: tuple[Tool, ...]) -> list[CallTag]:
        return [CallTag(t.name, _call_begin(t.name), ")") for t in tools]

    def parser(self, tools: tuple[Tool, ...]) -> PythonicCallParser:
        return PythonicCallParser(tuple(t.name for t in tools))

    def structural_tag(self, tools: tuple[Tool, ...], schemas: dict[str, Any], choice: ToolChoice,
                       text_schema: dict[str, Any] | None) -> dict[str, Any]:
        if choice.mode is ToolChoiceMode.NONE and text_schema is None:
            # Text may hold brackets; only a call's start is excluded.
            return structural_tag({"type": "any_text", "excludes": [TRIGGER + _call_begin(t.name) for t in tools]})
        def content(name: str) -> dict[str, Any]:
            freeform = schemas[name].get(FREEFORM_KEY)
            if freeform is not None:  # `input="..."`: a Python string is JSON's escaped text, as the grammar says
                return text_between(f'{INPUT}="', json_string_grammar(freeform), '"')
            return {"type": "grammar", "grammar": arguments_grammar(schemas[name])}

        return structural_tag(block_calls_format(
            self.tags(tools), content, choice, block_begin=TRIGGER, block_end=BLOCK_END, trigger=TRIGGER,
            separator=SEPARATOR, text_schema=text_schema))

    def render_calls(self, calls: tuple[ToolCall, ...]) -> str:
        return TRIGGER + SEPARATOR.join(render_call(c) for c in calls) + BLOCK_END if calls else ""

    def system_prompt(self, tools: tuple[Tool, ...]) -> str:
        # The wording of Llama 3.2's pythonic tool prompt (as vLLM's Llama 3.2 pythonic template writes it).
        listing = "".join(json.dumps({"type": "function", "function": {
            "name": t.name, "description": t.description, "parameters": t.parameters}}, indent=4, ensure_ascii=False)
            + "\n\n" for t in tools)
        return ("You have access to the following functions. To call functions, please respond with a python list "
                "of the calls. Respond in the format [func_name1(params_name1=params_value1, "
                "params_name2=params_value2...), func_name2(params)] Do not use variables.\n\n" + listing)

    def render_tool_result(self, content: str) -> str:
        return content


# -- parser -------------------------------------------------------------------------------------------------

_TEXT, _OPEN, _BEGIN, _KEY, _VALUE, _AFTER = range(6)


class PythonicCallParser:
    """Incremental parser for a block of pythonic calls. Text that may be the block's start (`[`) is held
    back until a tool's `NAME(` follows it (or something else does: then it is text). Each call's arguments
    stream as JSON: keys when their `=` arrives, values character by character, Python's words for literals
    (which may arrive split) written once complete."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self._names = names
        self._buffer = ""
        self._state = _TEXT
        self._calls = 0
        self._current_args = 0  # arguments seen in the current call
        self._depth = 0  # brackets open inside the current value
        self._strings = JsonStringEscaper()
        self._word = ""  # letters of a Python literal (True, False, None) still arriving

    @property
    def calls(self) -> int:
        return self._calls

    @property
    def in_call(self) -> bool:
        return self._state in (_OPEN, _BEGIN, _KEY, _VALUE)

    def feed(self, text: str) -> Iterator[ParsedEvent]:
        self._buffer += text
        yield from run_steps(lambda: _STEPS[self._state](self))

    def finish(self, cut_off: bool = False) -> Iterator[ParsedEvent]:
        if self._state == _AFTER:  # a partial separator or closer after a complete call: formatting
            self._buffer, self._state = "", _TEXT
        if self._state == _OPEN:  # `[` and what followed it did not become a call
            self._state = _TEXT
        if self._state == _TEXT and self._buffer:
            rest, self._buffer = self._buffer, ""
            if not cut_off and (event := text_event(rest, self._calls)) is not None:
                yield event

    # -- states -------------------------------------------------------------------------------------------

    def _scan_text(self) -> ParsedEvent | object | None:
        text, self._buffer, at_trigger = split_at_trigger(self._buffer, [TRIGGER], self._calls)
        if not at_trigger:
            return text_event(text, self._calls)
        self._state = _OPEN
        return text_event(text, self._calls) or CONTINUE

    def _scan_open(self) -> ParsedEvent | object | None:
        """At `[`: calls if a tool's `NAME(` follows; otherwise the `[` is text."""
        after = self._buffer[len(TRIGGER):]
        if any(after.startswith(_call_begin(n)) for n in self._names):
            self._buffer, self._state = after, _BEGIN
            return CONTINUE
        if any(_call_begin(n).startswith(after) for n in self._names):
            return None
        out, self._buffer, self._state = TRIGGER, after, _TEXT
        return text_event(out, self._calls) or CONTINUE

    def _scan_begin(self) -> ParsedEvent | object | None:
        for name in self._names:
            if self._buffer.startswith(_call_begin(name)):
                self._buffer = self._buffer[len(_call_begin(name)):]
                self._state, self._current_args = _KEY, 0
                return ToolCallStart(self._calls, new_call_id(), name)
        if any(_call_begin(n).startswith(self._buffer) for n in self._names):
            return None  # the rest of the name is still arriving (the grammar guarantees one)
        self._state = _TEXT  # not a call after all (only without the grammar): what follows is text
        return CONTINUE

    def _scan_key(self) -> ParsedEvent | object | None:
        """Before a keyword: its `name=`, or the call's `)`."""
        buf = self._buffer.lstrip(" ,\n\t\r") if self._current_args else self._buffer.lstrip(" \n\t\r")
        if buf.startswith(")"):
            self._buffer = buf[1:]
            return self._end_call("{}" if not self._current_args else "}")
        at = buf.find("=")
        if at < 0:
            self._buffer = buf
            return None
        key, self._buffer = buf[:at].strip(), buf[at + 1:]
        self._state, self._depth, self._strings, self._word = _VALUE, 0, JsonStringEscaper(), ""
        opening = "{" if not self._current_args else ", "
        self._current_args += 1
        return ToolCallArgs(self._calls, f"{opening}{json.dumps(key, ensure_ascii=False)}: ")

    def _scan_value(self) -> ParsedEvent | object | None:
        out: list[str] = []
        buf, i, ended = self._buffer, 0, False
        while i < len(buf):
            c = buf[i]
            if not self._strings.in_string and self._depth == 0 and c in ",)":
                ended = True
                break
            i += 1
            if not self._strings.in_string:
                if c.isalpha():
                    self._word += c
                    continue
                if self._word:
                    out.append(_PYTHON_WORDS.get(self._word, self._word))
                    self._word = ""
                if c in "{[":
                    self._depth += 1
                elif c in "}]":
                    self._depth -= 1
            out.append(self._strings.char(c))
        self._buffer = buf[i:]
        if ended:
            if self._word:
                out.append(_PYTHON_WORDS.get(self._word, self._word))
                self._word = ""
            self._state = _KEY
        fragment = "".join(out)
        if fragment:
            return ToolCallArgs(self._calls, fragment)
        return CONTINUE if ended else None

    def _end_call(self, closing: str) -> ParsedEvent:
        event = ToolCallArgs(self._calls, closing)
        self._calls += 1
        self._state = _AFTER
        return event

    def _scan_after(self) -> ParsedEvent | object | None:
        buf = self._buffer
        if buf.startswith(SEPARATOR):
            self._buffer, self._state = buf[len(SEPARATOR):], _BEGIN
            return CONTINUE
        if buf.startswith(BLOCK_END):
            self._buffer, self._state = buf[len(BLOCK_END):], _TEXT
            return CONTINUE
        if not buf or SEPARATOR.startswith(buf):
            return None
        self._state = _TEXT  # (only without the grammar)
        return CONTINUE


_STEPS = {
    _TEXT: PythonicCallParser._scan_text,
    _OPEN: PythonicCallParser._scan_open,
    _BEGIN: PythonicCallParser._scan_begin,
    _KEY: PythonicCallParser._scan_key,
    _VALUE: PythonicCallParser._scan_value,
    _AFTER: PythonicCallParser._scan_after,
}

"""Freeform tool input under a grammar, inside a JSON call: the Responses API's `custom` tools (Codex's
`apply_patch` with its Lark grammar).

A freeform tool is called like a function with one string argument (`{"input": "..."}`), so every tool format
and parser handles it unchanged. Its grammar describes the input's text, but in the call that text is a JSON
string: quotes, backslashes and control characters appear escaped. `json_string_grammar` rewrites the grammar
(xgrammar's EBNF, which `Grammar.from_lark` / `from_regex` print) so that it describes the escaped form: every
string literal is escaped as JSON escapes it, and every character class becomes the class without `"`, `\\` and
control characters, or the escapes of those it contained. The call's content is then `{"input": "` + that
grammar + `"}`, which the structural tag enforces like any other call's arguments.

The grammar travels to the tool formats in the tool's (relaxed) parameter schema, under FREEFORM_KEY: every JSON
format builds a call's content with `runtime.tools.grammar.json_content(schema)`, which reads it there. The
XML-ish formats (runtime/tools/xml_calls.py) write parameter values raw, so there the grammar is used unescaped,
between the `input` parameter's tags as the family's template writes them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from runtime.constraints import ebnf_literal

FREEFORM_KEY = "x-freeform-grammar"  # in a tool's relaxed schema: the EBNF its `input` string follows
INPUT = "input"

# Characters JSON strings must escape, and how json.dumps writes them.
_SPECIAL = [chr(c) for c in range(0x20)] + ['"', "\\"]
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0", "a": "\a",
                   "e": "\x1b"}


def freeform_parameters() -> dict[str, Any]:
    return {"type": "object", "properties": {INPUT: {"type": "string"}}, "required": [INPUT],
            "additionalProperties": False}


def freeform_content(ebnf: str) -> dict[str, Any]:
    """A structural-tag content: the arguments object whose one string follows `ebnf` (unescaped text)."""
    return text_between('{"' + INPUT + '": "', json_string_grammar(ebnf), '"}')


def text_between(before: str, ebnf: str, after: str) -> dict[str, Any]:
    """A structural-tag content: `before`, text following `ebnf`, `after`. The XML-ish formats write the
    input raw (unescaped) between their parameter's tags, so they call this with the grammar as it is."""
    return {"type": "sequence", "elements": [
        {"type": "const_string", "value": before},
        {"type": "grammar", "grammar": ebnf},
        {"type": "const_string", "value": after},
    ]}


def _escaped(ch: str) -> str:
    return json.dumps(ch, ensure_ascii=False)[1:-1]


def _class_char(code: int) -> str:
    ch = chr(code)
    if ch in "\\]-^[":
        return "\\" + ch
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    return ch


def _read_escape(text: str, i: int) -> tuple[str, int]:
    """The character an escape at text[i] (a backslash) stands for, and the index after it."""
    kind = text[i + 1]
    if kind in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[kind], i + 2
    for prefix, width in (("x", 2), ("u", 4), ("U", 8)):
        if kind == prefix:
            return chr(int(text[i + 2:i + 2 + width], 16)), i + 2 + width
    return kind, i + 2  # \" \\ \] \[ \- \^ \/ ...


def _read_literal(text: str, i: int) -> tuple[str, int]:
    quote = text[i]
    i += 1
    out = []
    while text[i] != quote:
        if text[i] == "\\":
            ch, i = _read_escape(text, i)
        else:
            ch, i = text[i], i + 1
        out.append(ch)
    return "".join(out), i + 1


def _read_class(text: str, i: int) -> tuple[bool, list[tuple[int, int]], int]:
    """A character class at text[i] ('['): (negated, code point ranges, the index after it)."""
    i += 1
    negated = text[i] == "^"
    if negated:
        i += 1
    ranges: list[tuple[int, int]] = []
    while text[i] != "]":
        if text[i] == "\\":
            low, i = _read_escape(text, i)
        else:
            low, i = text[i], i + 1
        high = low
        if text[i] == "-" and text[i + 1] != "]":
            if text[i + 1] == "\\":
                high, i = _read_escape(text, i + 1)
            else:
                high, i = text[i + 1], i + 2
        ranges.append((ord(low), ord(high)))
    return negated, ranges, i + 1


def _escaped_class(negated: bool, ranges: list[tuple[int, int]]) -> str:
    """The class, matched inside a JSON string: plain characters as a class, the special ones as escapes."""
    def contains(code: int) -> bool:
        inside = any(low <= code <= high for low, high in ranges)
        return inside != negated

    specials = [ch for ch in _SPECIAL if contains(ord(ch))]
    alternatives = [ebnf_literal(_escaped(ch)) for ch in specials]
    excluded = {ord(ch) for ch in _SPECIAL}
    if negated:  # everything but the class's ranges and the specials
        parts = [(low, high) for low, high in ranges] + [(c, c) for c in sorted(excluded)]
        body = "".join(_class_char(low) if low == high else f"{_class_char(low)}-{_class_char(high)}"
                       for low, high in parts)
        alternatives.insert(0, f"[^{body}]")
    else:
        plain: list[tuple[int, int]] = []
        for low, high in ranges:
            start = low
            for code in range(low, min(high, 0x7F) + 1):  # the specials are all below 0x7f
                if code in excluded:
                    if start < code:
                        plain.append((start, code - 1))
                    start = code + 1
            if start <= high:
                plain.append((start, high))
        if plain:
            body = "".join(_class_char(low) if low == high else f"{_class_char(low)}-{_class_char(high)}"
                           for low, high in plain)
            alternatives.insert(0, f"[{body}]")
    if not alternatives:
        return '""'  # an empty class; cannot occur in a grammar that compiled
    return "(" + " | ".join(alternatives) + ")"


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.]*")


def json_string_grammar(ebnf: str) -> str:
    """`ebnf` (xgrammar's EBNF for some text) rewritten to match that text as a JSON string's content."""
    out: list[str] = []
    i = 0
    while i < len(ebnf):
        ch = ebnf[i]
        if ch in "\"'":
            text, i = _read_literal(ebnf, i)
            out.append(ebnf_literal("".join(_escaped(c) for c in text)) if text else '""')
        elif ch == "[":
            negated, ranges, i = _read_class(ebnf, i)
            out.append(_escaped_class(negated, ranges))
        elif ch == "#":  # a comment, to the end of the line
            end = ebnf.find("\n", i)
            i = len(ebnf) if end < 0 else end
        else:
            word = _WORD.match(ebnf, i)
            if word:
                out.append(word.group())
                i = word.end()
            else:
                out.append(ch)
                i += 1
    return "".join(out)

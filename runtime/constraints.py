"""Grammars a request names for its text, as vLLM and SGLang spell them (a regex, an EBNF grammar, a list of
choices, an xgrammar structural tag), checked and turned into the Constraint both engines take.

Each is parsed here with xgrammar, without the tokenizer (milliseconds), so a bad one is a 400 naming its field
before anything runs, on either engine; the tokenizer-level compile stays the engine's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import xgrammar as xgr

from runtime.errors import InvalidRequest
from runtime.types import Constraint, ConstraintKind

# xgrammar's messages start with a timestamp and its C++ source position: "[07:25:23] /project/cpp/x.cc:83: ".
_XGRAMMAR_PREFIX = re.compile(r"^\s*\[[^\]]*\]\s*\S+:\d+:\s*")
_CHECK_FAILED = re.compile(r"^Check failed: \(.*?\) is false: ")  # its assertions' wording, before the message
MAX_CHOICES = 1024


def regex(pattern: str, param: str) -> Constraint:
    _parse(xgr.Grammar.from_regex, pattern, param, "regex")
    return Constraint(ConstraintKind.REGEX, pattern)


def ebnf(grammar: str, param: str) -> Constraint:
    """An EBNF (GBNF) grammar as xgrammar reads it, whose start rule is `root`."""
    _parse(xgr.Grammar.from_ebnf, grammar, param, "EBNF grammar")
    return Constraint(ConstraintKind.EBNF, grammar)


def choice(options: list[str], param: str) -> Constraint:
    """Exactly one of `options`, as a grammar (vLLM's `choice` compiles the same way)."""
    if not options:
        raise InvalidRequest("choice must list at least one option.", param=param)
    if len(options) > MAX_CHOICES:
        raise InvalidRequest(f"choice may list at most {MAX_CHOICES} options.", param=param)
    return ebnf("root ::= " + " | ".join(ebnf_literal(o) for o in options), param)


def structural_tag(tag: Any, param: str) -> Constraint:
    """An xgrammar structural tag, as JSON text or an object: `{"type": "structural_tag", "format": {...}}`, or
    the older form vLLM and SGLang also take, `{"structures": [{"begin", "schema", "end"}], "triggers": [...]}`
    (rewritten into the newer one, as xgrammar itself reads it, so that both engines get the same text)."""
    tag = json_object(tag, param, "The structural tag")
    if "structures" in tag:
        tag = _from_legacy(tag, param)
    elif "format" in tag:
        tag = {"type": "structural_tag", "format": tag["format"]}
    else:
        raise InvalidRequest("A structural tag needs `format` (or the older `structures` and `triggers`).",
                             param=param)
    text = json.dumps(tag, ensure_ascii=False)
    _parse(xgr.Grammar.from_structural_tag, text, param, "structural tag")
    return Constraint(ConstraintKind.STRUCTURAL_TAG, text)


def json_object(value: Any, param: str, what: str) -> dict[str, Any]:
    """A JSON object given as one or as JSON text (vLLM and SGLang accept both for schemas and tags)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidRequest(f"{what} is not valid JSON.", param=param) from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what} must be a JSON object.", param=param)
    return value


def _from_legacy(tag: dict[str, Any], param: str) -> dict[str, Any]:
    structures, triggers = tag.get("structures"), tag.get("triggers")
    if not isinstance(structures, list) or not isinstance(triggers, list) or not all(
            isinstance(t, str) and t for t in triggers):
        raise InvalidRequest("A structural tag's `structures` and `triggers` must be lists (of objects, and of "
                             "non-empty strings).", param=param)
    tags = []
    for i, s in enumerate(structures):
        if not isinstance(s, dict) or not isinstance(s.get("begin"), str) or not isinstance(s.get("end"), str):
            raise InvalidRequest(f"structures[{i}] needs `begin` and `end` strings and a `schema`.", param=param)
        schema = s.get("schema", s.get("json_schema", {}))
        tags.append({"type": "tag", "begin": s["begin"], "end": s["end"],
                     "content": {"type": "json_schema", "json_schema": schema}})
    return {"type": "structural_tag", "format": {"type": "triggered_tags", "triggers": triggers, "tags": tags,
                                                 "at_least_one": False, "stop_after_first": False}}


def _parse(build: Callable[[str], Any], text: str, param: str, what: str) -> None:
    try:
        build(text)
    except Exception as exc:  # xgrammar raises RuntimeError and its own ValueError subclasses
        raise InvalidRequest(f"Invalid {what}: {xgrammar_message(exc)}", param=param) from None


def check_schema_compiles(schema: Any, param: str) -> None:
    """xgrammar's own reading of a JSON schema into its grammar, without the tokenizer (a millisecond for most):
    what it cannot compile (a lower bound above its upper one anywhere, an empty range, an integer bound that is
    not a whole number or beyond 64 bits...) is a 400 naming the schema, before an engine's compile fails
    without being able to say which schema of the request it was."""
    text = json.dumps(schema, ensure_ascii=False)
    try:
        xgr.Grammar.from_json_schema(text, any_whitespace=False)
    except Exception as exc:  # xgrammar raises RuntimeError and its own ValueError subclasses
        raise InvalidRequest(f"The schema at {param} cannot be enforced: {xgrammar_message(exc)}",
                             param=param) from None


def xgrammar_message(exc: Exception) -> str:
    """An xgrammar error's first line, without its timestamp and C++ source position."""
    lines = _XGRAMMAR_PREFIX.sub("", str(exc)).strip().splitlines()
    return _CHECK_FAILED.sub("", lines[0])[:300] if lines else type(exc).__name__


def ebnf_literal(text: str) -> str:
    """`text` as an EBNF string literal: quotes and backslashes escaped, control characters as \\xHH."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'

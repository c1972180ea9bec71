"""Request bodies to typed structs, with decode failures raised as InvalidRequest naming the field."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from runtime.errors import InvalidRequest

T = TypeVar("T")

_AT_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"missing required field `(?P<field>[^`]+)`")


# A bound a value broke, named as pydantic names it: vLLM's and SGLang's 400s carry these names ("[type=
# less_than_equal, ...]"), and scripts written against them look for them.
_BOUND = re.compile(r"^Expected `(?P<type>[^`]+)` (?P<bound>of length >=|of length <=|>=|<=|>|<|that's a multiple of) ")
_BOUND_KINDS = {"of length >=": "too_short", "of length <=": "too_long", ">=": "greater_than_equal",
                "<=": "less_than_equal", ">": "greater_than", "<": "less_than", "that's a multiple of": "multiple_of"}


def with_bound_kind(message: str) -> str:
    """'Expected `int` <= 5 - at `$.n`' -> the same with ' [type=less_than_equal]' (other messages as they are);
    a string's length bounds are pydantic's string_too_short / string_too_long."""
    match = _BOUND.match(message)
    if match is None:
        return message
    string = match["type"] == "str" and match["bound"].startswith("of length")
    return f"{message} [type={'string_' if string else ''}{_BOUND_KINDS[match['bound']]}]"


def decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        raise InvalidRequest(f"Invalid request: {with_bound_kind(message)}", param=error_param(message)) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequest("The request body is nested too deeply.") from None


def without_path(message: str) -> str:
    """A msgspec error message without its trailing '- at `$...`'."""
    return _AT_PATH.sub("", message)


def error_param(message: str) -> str | None:
    """'Expected `float` <= 2.0 - at `$.temperature`' -> 'temperature'."""
    path = None
    at = _AT_PATH.search(message)
    if at:
        path = at.group("path") or None
    missing = _MISSING.search(message)
    if missing:
        path = f"{path}.{missing.group('field')}" if path else missing.group("field")
    return path


def json_dumps(value: Any) -> bytes:
    return msgspec.json.encode(value)


def decode_at(decoder: msgspec.json.Decoder[T], raw: msgspec.Raw, param: str) -> T:
    """Decode a nested raw value; a failure names the field by its full path."""
    try:
        return decoder.decode(raw)
    except RecursionError:
        raise InvalidRequest("Invalid request: nested too deeply.", param=param) from None
    except msgspec.ValidationError as exc:
        sub = error_param(str(exc))
        path = param
        if sub:
            path += sub if sub.startswith("[") else "." + sub
        message = without_path(str(exc))
        raise InvalidRequest("Invalid request: " + with_bound_kind(f"{message} - at `$.{path}`"), param=path) from None

"""The one constraint on a request's output, in whichever spelling it came: OpenAI's `response_format` (plus
the `structural_tag` type vLLM and SGLang add), vLLM's `structured_outputs` and its older `guided_*` fields,
SGLang's `regex`, `ebnf` and `json_schema`. At most one may be given (vLLM and SGLang refuse several too)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from app.openai import schemas as s
from runtime import constraints
from runtime.errors import InvalidRequest
from runtime.tools.schemas import check_output_schema
from runtime.types import ResponseFormat


def output_format(req: s.SamplingFields) -> ResponseFormat:
    named: list[tuple[str, ResponseFormat]] = []
    if req.response_format is not None and not isinstance(req.response_format, s.TextFormat):
        named.append(("response_format", _response_format(req.response_format)))
    if req.structured_outputs is not None:
        named.extend(_structured_outputs(req.structured_outputs, "structured_outputs."))
    legacy = s.StructuredOutputs(json=req.guided_json, regex=req.guided_regex, choice=req.guided_choice,
                                 grammar=req.guided_grammar)
    named.extend(_structured_outputs(legacy, "guided_"))
    if req.regex is not None:
        named.append(("regex", ResponseFormat("grammar", grammar=constraints.regex(req.regex, "regex"), source="regex")))
    if req.ebnf is not None:
        named.append(("ebnf", ResponseFormat("grammar", grammar=constraints.ebnf(req.ebnf, "ebnf"))))
    if req.json_schema is not None:
        named.append(("json_schema", _json_schema(req.json_schema, "json_schema")))
    if len(named) > 1:
        raise InvalidRequest(f"Only one constraint on the output may be given; got {named[0][0]} and {named[1][0]}.",
                             param=named[1][0])
    return named[0][1] if named else ResponseFormat()


def _response_format(rf: s.ResponseFormatIn) -> ResponseFormat:
    match rf:
        case s.TextFormat():
            return ResponseFormat()
        case s.JsonObjectFormat():
            return ResponseFormat("json_object")
        case s.JsonSchemaFormat():
            schema, param = rf.json_schema.schema, "response_format.json_schema.schema"
            if schema is not None and not isinstance(schema, dict):
                raise InvalidRequest("response_format.json_schema.schema must be an object.", param=param)
            if schema is not None:
                check_output_schema(schema, param)
            return ResponseFormat("json_schema", schema, bool(rf.json_schema.strict), source=param)
        case s.StructuralTagFormat():
            tag = {k: v for k, v in (("format", rf.format), ("structures", rf.structures),
                                     ("triggers", rf.triggers)) if v is not None}
            return ResponseFormat("grammar", grammar=constraints.structural_tag(tag, "response_format"))
    raise AssertionError(rf)


def _structured_outputs(so: s.StructuredOutputs, prefix: str) -> list[tuple[str, ResponseFormat]]:
    """Each constraint set in vLLM's `structured_outputs` (prefix "structured_outputs.") or in its older
    `guided_*` fields (prefix "guided_"), named by its field."""
    out = []
    if so.json is not None:
        out.append((prefix + "json", _json_schema(so.json, prefix + "json")))
    if so.regex is not None:
        out.append((prefix + "regex", ResponseFormat("grammar", grammar=constraints.regex(so.regex, prefix + "regex"),
                                                     source=prefix + "regex")))
    if so.choice is not None:
        out.append((prefix + "choice",
                    ResponseFormat("grammar", grammar=constraints.choice(so.choice, prefix + "choice"))))
    if so.grammar is not None:
        out.append((prefix + "grammar",
                    ResponseFormat("grammar", grammar=constraints.ebnf(so.grammar, prefix + "grammar"))))
    if so.json_object:
        out.append((prefix + "json_object", ResponseFormat("json_object")))
    if so.structural_tag is not None:
        out.append((prefix + "structural_tag", ResponseFormat(
            "grammar", grammar=constraints.structural_tag(so.structural_tag, prefix + "structural_tag"))))
    return out


def _json_schema(schema: Any, param: str) -> ResponseFormat:
    """A JSON schema given as an object or as JSON text, checked as a schema."""
    schema = constraints.json_object(schema, param, "The JSON schema")
    check_output_schema(schema, param)  # first: what follows recurses
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidRequest(f"Invalid JSON schema: {exc.message}", param=param) from None
    return ResponseFormat("json_schema", schema, source=param)

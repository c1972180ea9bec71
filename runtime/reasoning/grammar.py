"""The grammar leaves the reasoning region free: a request's constraint applies after it, exactly as without
reasoning (the shape xgrammar's own builtin structural tags give reasoning models, builtin_structural_tag.py
`_build_reasoning_prefix`)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, assert_never

from runtime.reasoning.plan import ReasoningPlan
from runtime.tools import harmony
from runtime.tools.grammar import json_content, structural_tag
from runtime.types import Constraint, ConstraintKind

# Whitespace between the region's end and the constrained answer (Qwen3 writes "</think>\n\n"); bounded, as
# unbounded whitespace lets a model pad forever.
BETWEEN = {"type": "regex", "pattern": r"[ \n]{0,2}"}


def reasoning_region(plan: ReasoningPlan) -> dict[str, Any]:
    """The region as a structural-tag format: continued when the prompt opened it, optional otherwise."""
    fmt = plan.format
    region: dict[str, Any] = {"type": "tag", "begin": "" if plan.inside else fmt.start,
                              "content": {"type": "any_text"}, "end": fmt.end}
    if plan.control.force_open and not plan.inside:
        return region
    return region if plan.inside else {"type": "optional", "content": region}


def unforced(plan: ReasoningPlan) -> ReasoningPlan:
    """The plan with nothing forced: for a harmony request whose structural tag is not the harmony tool
    format's (a client's own), which may refuse the forced headers."""
    return replace(plan, control=replace(plan.control, budget=None, force_open=False))


def with_reasoning(constraint: Constraint | None, plan: ReasoningPlan) -> Constraint | None:
    """`constraint` preceded by the free reasoning region. On harmony (gpt-oss) a constraint on the answer's
    text (a JSON schema, regex or grammar: response_format) becomes the final channel's content after an
    optional analysis message; a structural tag already describes the whole message stream (the harmony tool
    format's, or one a client wrote for it) and is left as it is."""
    if constraint is None:
        return constraint
    if plan.format.kind == "harmony":
        if constraint.kind is ConstraintKind.STRUCTURAL_TAG:
            return constraint
        tag = structural_tag(harmony.after_analysis(harmony.final_message(answer_format(constraint))))
        return Constraint(ConstraintKind.STRUCTURAL_TAG, json.dumps(tag, ensure_ascii=False))
    tag = structural_tag({"type": "sequence", "elements": [reasoning_region(plan), BETWEEN,
                                                           answer_format(constraint)]})
    return Constraint(ConstraintKind.STRUCTURAL_TAG, json.dumps(tag, ensure_ascii=False))


def answer_format(constraint: Constraint) -> dict[str, Any]:
    """A constraint as a structural-tag format (a structural tag: its own format)."""
    match constraint.kind:
        case ConstraintKind.STRUCTURAL_TAG:
            return json.loads(constraint.text)["format"]
        case ConstraintKind.JSON_SCHEMA:
            return json_content(json.loads(constraint.text))
        case ConstraintKind.REGEX:
            return {"type": "regex", "pattern": constraint.text}
        case ConstraintKind.EBNF:
            return {"type": "grammar", "grammar": constraint.text}
        case _ as unreachable:
            assert_never(unreachable)

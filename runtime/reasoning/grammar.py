"""The grammar leaves the reasoning region free: a request's constraint applies after it, exactly as without
reasoning (the shape xgrammar's own builtin structural tags give reasoning models, builtin_structural_tag.py
`_build_reasoning_prefix`)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from runtime.reasoning.plan import ReasoningPlan
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
    """The plan with nothing forced: for a harmony request whose constraint knows no channels (a
    response_format without the harmony tool format's grammar), which would refuse the forced headers."""
    return replace(plan, control=replace(plan.control, budget=None, force_open=False))


def with_reasoning(constraint: Constraint | None, plan: ReasoningPlan) -> Constraint | None:
    """`constraint` preceded by the free reasoning region. (Harmony's channels are the harmony tool format's
    grammar itself; any other constraint is left as it is there, see docs/API.md.)"""
    if constraint is None or plan.format.kind != "think":
        return constraint
    match constraint.kind:
        case ConstraintKind.STRUCTURAL_TAG:
            answer = json.loads(constraint.text)["format"]
        case ConstraintKind.JSON_SCHEMA:
            answer = json_content(json.loads(constraint.text))
        case ConstraintKind.REGEX:
            answer = {"type": "regex", "pattern": constraint.text}
        case ConstraintKind.EBNF:
            answer = {"type": "grammar", "grammar": constraint.text}
    tag = structural_tag({"type": "sequence", "elements": [reasoning_region(plan), BETWEEN, answer]})
    return Constraint(ConstraintKind.STRUCTURAL_TAG, json.dumps(tag, ensure_ascii=False))

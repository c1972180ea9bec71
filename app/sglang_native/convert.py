"""SGLang /generate requests to the neutral prompts, sampling parameters and output constraint."""

from __future__ import annotations

from dataclasses import replace
from collections.abc import Callable
from typing import Any

from app.openai.convert import MAX_PROMPTS, check_seed_span, logit_bias
from app.sglang_native import schemas as s
from runtime import constraints
from runtime.errors import InvalidRequest
from runtime.tools.schemas import check_output_schema
from runtime.stops import check_stops
from runtime.types import ResponseFormat, SamplingParams


def prompts(req: s.GenerateRequest) -> list[str | list[int]]:
    """`text` (a string or a list of them) or `input_ids` (token ids or a list of them), exactly one."""
    if (req.text is None) == (req.input_ids is None):
        raise InvalidRequest("Send either text or input_ids.", param="text")
    if req.text is not None:
        texts = [req.text] if isinstance(req.text, str) else req.text
        if not texts or not all(texts):
            raise InvalidRequest("text must be a non-empty string or a list of them.", param="text")
        return _bounded(list(texts))
    ids: Any = req.input_ids
    batch = ids if ids and all(isinstance(x, list) for x in ids) else [ids]
    for i, one in enumerate(batch):
        if not one or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in one):
            raise InvalidRequest("input_ids must be token ids, or a list of lists of them.", param=f"input_ids[{i}]")
    return _bounded(batch)


def adapters(req: s.GenerateRequest, count: int, lora: Callable[[str, str], str],
             default: str | None) -> list[str | None]:
    """Each prompt's LoRA adapter: `lora_path` names one for all, or one per prompt (null: the base model);
    without it, `default` (the adapter `model` named, if any). `lora` checks a name (NotFound otherwise)."""
    if req.lora_path is None:
        return [default] * count
    if isinstance(req.lora_path, str):
        return [lora(req.lora_path, "lora_path")] * count
    if len(req.lora_path) != count:
        raise InvalidRequest(f"lora_path has {len(req.lora_path)} entries for {count} prompts; give one per prompt "
                             "(null for the base model) or a single name.", param="lora_path")
    return [None if name is None else lora(name, f"lora_path[{i}]") for i, name in enumerate(req.lora_path)]


def is_batch(req: s.GenerateRequest) -> bool:
    """Whether SGLang answers with a list: a list of texts or of id lists, or n > 1."""
    ids: Any = req.input_ids
    return (isinstance(req.text, list) or bool(ids and isinstance(ids[0], list))
            or req.sampling_params.n > 1)


def _bounded(batch: list[Any]) -> list[Any]:
    if len(batch) > MAX_PROMPTS:
        raise InvalidRequest(f"At most {MAX_PROMPTS} prompts per request.", param="text")
    return batch


def sampling(p: s.NativeSamplingParams) -> list[SamplingParams]:
    """One SamplingParams per output of a prompt (`n`); with a seed, output i uses seed + i."""
    if p.max_new_tokens is not None and p.min_new_tokens > p.max_new_tokens:
        raise InvalidRequest("min_new_tokens must be at most max_new_tokens.", param="sampling_params.min_new_tokens")
    stops = (p.stop,) if isinstance(p.stop, str) else tuple(p.stop or ())
    check_stops(stops, "sampling_params.stop")
    check_seed_span(p.sampling_seed, p.n, "sampling_params.sampling_seed")
    one = SamplingParams(
        temperature=p.temperature, top_p=p.top_p, top_k=max(p.top_k, 0), min_p=p.min_p,
        frequency_penalty=p.frequency_penalty, presence_penalty=p.presence_penalty,
        repetition_penalty=p.repetition_penalty, seed=p.sampling_seed, max_new_tokens=p.max_new_tokens,
        min_new_tokens=p.min_new_tokens, stop=stops,
        stop_token_ids=tuple(p.stop_token_ids or ()), ignore_eos=p.ignore_eos,
        skip_special_tokens=p.skip_special_tokens, logit_bias=logit_bias(p.logit_bias),
        return_token_ids=True,  # SGLang always answers with output_ids
    )
    if one.seed is None:
        return [one] * p.n
    return [replace(one, seed=one.seed + i) for i in range(p.n)]


def output_format(p: s.NativeSamplingParams) -> ResponseFormat:
    """The one constraint of json_schema, regex, ebnf and structural_tag (several: 400, as SGLang answers)."""
    given = [k for k in ("json_schema", "regex", "ebnf", "structural_tag") if getattr(p, k) is not None]
    if len(given) > 1:
        raise InvalidRequest(f"Only one of json_schema, regex, ebnf and structural_tag can be set; got "
                             f"{' and '.join(given)}.", param=f"sampling_params.{given[1]}")
    param = f"sampling_params.{given[0]}" if given else ""
    if p.json_schema is not None:
        schema = constraints.json_object(p.json_schema, param, "json_schema")
        check_output_schema(schema, param)
        return ResponseFormat("json_schema", schema, source=param)
    if p.regex is not None:
        return ResponseFormat("grammar", grammar=constraints.regex(p.regex, param), source=param)
    if p.ebnf is not None:
        return ResponseFormat("grammar", grammar=constraints.ebnf(p.ebnf, param))
    if p.structural_tag is not None:
        return ResponseFormat("grammar", grammar=constraints.structural_tag(p.structural_tag, param))
    return ResponseFormat()

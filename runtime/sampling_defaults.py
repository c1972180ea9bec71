"""Sampling defaults for what a request leaves unset, as vLLM and SGLang serve them.

Both peers read the model's generation_config.json and use its sampling fields where a request sends none
(vLLM's `--generation-config auto`, its default; SGLang's `--sampling-defaults model`, its default): Qwen2.5-Coder
ships temperature 0.7, top_p 0.8, top_k 20 and repetition_penalty 1.05, and a client that sends no temperature
gets those, not 1.0. vLLM's `--override-generation-config '{"temperature": 0}'` sets or overrides them. The keys
are vLLM's (`ModelConfig.get_diff_sampling_param`); `max_new_tokens` becomes the default `max_tokens`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runtime.types import SamplingParams

# generation_config.json key -> SamplingParams field
KEYS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
        "repetition_penalty": "repetition_penalty", "max_new_tokens": "max_new_tokens"}
# What a dialect may leave unset (SamplingParams.unset), by the SamplingParams field's name
DEFAULTABLE = frozenset(KEYS.values())
# --generation-config values that read nothing from the model (vLLM's "vllm"; SGLang's "openai")
NO_MODEL_DEFAULTS = frozenset({"vllm", "openai", "none"})


@dataclass(frozen=True)
class SamplingDefaults:
    values: dict[str, float | int] = field(default_factory=dict)  # SamplingParams field -> default

    def apply(self, sampling: SamplingParams) -> SamplingParams:
        """`sampling` with each field the client left unset taken from the defaults (where they have one)."""
        if not sampling.unset:
            return sampling
        changes = {name: value for name, value in self.values.items() if name in sampling.unset}
        return replace(sampling, **changes, unset=frozenset())

    def describe(self) -> str:
        return ", ".join(f"{k} {v:g}" for k, v in self.values.items()) or "none"


def unset_fields(request: Any, names: tuple[str, ...], *, max_new_tokens: int | None) -> frozenset[str]:
    """The request's sampling fields (named as SamplingParams names them) that it sent as null or not at all,
    and `max_new_tokens` when the request's own maximum (under its dialect's name) is None."""
    unset = {name for name in names if getattr(request, name, None) is None}
    return frozenset(unset | ({"max_new_tokens"} if max_new_tokens is None else set()))


def load_sampling_defaults(model_path: str, source: str = "auto", override: str | None = None) -> SamplingDefaults:
    """`source`: "auto" (the model's generation_config.json), "vllm" / "openai" / "none" (nothing from the model),
    or a folder holding a generation_config.json; `override`: a JSON object whose keys win. ValueError naming
    the problem for a bad override or value."""
    values: dict[str, float | int] = {}
    if source not in NO_MODEL_DEFAULTS:
        folder = Path(model_path) if source == "auto" else Path(source)
        file = folder / "generation_config.json"
        if source != "auto" and not file.is_file():
            raise ValueError(f"--generation-config {source}: no generation_config.json there")
        if file.is_file():
            values |= _sampling_values(_read_json(file.read_text(), str(file)), str(file), strict=False)
    if override:
        values |= _sampling_values(_read_json(override, "--override-generation-config"),
                                   "--override-generation-config", strict=True)
    return SamplingDefaults(values)


def _read_json(text: str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where} must be a JSON object")
    return obj


def _sampling_values(obj: dict[str, Any], where: str, *, strict: bool) -> dict[str, float | int]:
    """The sampling keys of a generation config. A model's file holds many other keys (ignored) and may hold
    values no request could send (skipped); an override (`strict`) with an unknown key or a bad value is refused,
    since it would silently do nothing."""
    out: dict[str, float | int] = {}
    for key, value in obj.items():
        if key not in KEYS:
            if strict:
                raise ValueError(f"{where}: {key!r} is not a sampling default; known: {', '.join(KEYS)}")
            continue
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            if strict:
                raise ValueError(f"{where}: {key} must be a number, not {value!r}")
            continue
        bad = {"temperature": value < 0, "top_p": not 0 <= value <= 1, "min_p": not 0 <= value <= 1,
               "repetition_penalty": value <= 0, "top_k": value != int(value) or value < -1,
               "max_new_tokens": value != int(value) or value < 1}[key]
        if bad:
            if strict:
                raise ValueError(f"{where}: {key} {value!r} is out of range")
            continue  # a model's file with a value no request could send: not a default
        if key == "top_k":
            value = max(int(value), 0)  # -1 (vLLM) and 0 (ours) both mean off
        elif key == "max_new_tokens":
            value = int(value)
        out[KEYS[key]] = value
    return out

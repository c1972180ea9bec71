"""LoRA adapters for our model code (model.py): PEFT's on-disk format read into the shape of our fused
projections, applied per row of the batch, never merged into the weights, so sequences of different adapters
and of the base model share one forward pass.

A PEFT adapter directory holds adapter_config.json (`r`, `lora_alpha`, `target_modules`, `use_rslora`, ...) and
adapter_model.safetensors, whose keys end `<module path>.lora_A.weight` ([r, in]) and `.lora_B.weight` ([out, r]).
A targeted projection W then computes x W^T + (x A^T B^T) * scale, scale = lora_alpha / r (/ sqrt(r) with
use_rslora). Our layers fuse q/k/v and gate/up into one matrix each (model.py `Layer`), so an adapter's
modules of one fused projection are stacked the same way: A's side by side ([in, sum of ranks]) and B's
block-diagonally ([sum of ranks, fused width]), with the scale folded into B. One pair of small matmuls per
fused projection and adapter, over that adapter's rows only: the base model's rows are not touched.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

# PEFT's module name -> (our fused projection, its part: which slice of the fused output it is)
MODULES = {
    "q_proj": ("qkv", 0), "k_proj": ("qkv", 1), "v_proj": ("qkv", 2), "o_proj": ("o", 0),
    "gate_proj": ("gate_up", 0), "up_proj": ("gate_up", 1), "down_proj": ("down", 0),
}
_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.[\w-]+)?\.weight$")


class AdapterError(ValueError):
    """An adapter this code cannot apply, with what is wrong and where."""


@dataclass(frozen=True)
class LoraPair:
    a: torch.Tensor  # [in, R]: the targeted modules' A^T, side by side
    b: torch.Tensor  # [R, fused out]: their B^T * scale, each in its module's columns

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.a) @ self.b


@dataclass(frozen=True)
class LoraWeights:
    name: str
    layers: tuple[dict[str, LoraPair], ...]  # per decoder layer: fused projection name -> its pair


def load_peft_adapter(name: str, path: str, parts: dict[str, tuple[int, ...]], inputs: dict[str, int],
                      layers: int, dtype: torch.dtype) -> LoraWeights:
    """`parts`: each fused projection's output widths in order (qkv: q, k, v); `inputs`: its input width."""
    root = Path(path)
    config = _config(root)
    rank, alpha = config["r"], config.get("lora_alpha", config["r"])
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    tensors = _tensors(root)
    found: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = _KEY.search(key)
        if match is None or match.group(2) not in MODULES:
            raise AdapterError(f"LoRA adapter {name!r} ({path}): {key!r} is not a LoRA weight of a decoder "
                               f"layer's {', '.join(MODULES)} (other modules are not supported)")
        layer = int(match.group(1))
        if layer >= layers:
            raise AdapterError(f"LoRA adapter {name!r} ({path}): {key!r} names layer {layer}; the model has {layers}")
        found.setdefault((layer, match.group(2)), {})[match.group(3)] = tensor
    per_layer: list[dict[str, LoraPair]] = [{} for _ in range(layers)]
    for layer in range(layers):
        for fused, widths in parts.items():
            modules = [(m, part) for m, (f, part) in MODULES.items() if f == fused and (layer, m) in found]
            if modules:
                per_layer[layer][fused] = _stack(name, layer, modules, found, widths, inputs[fused], scale, dtype)
    return LoraWeights(name, tuple(per_layer))


def _config(root: Path) -> dict:
    file = root / "adapter_config.json"
    if not file.is_file():
        raise AdapterError(f"{root} has no adapter_config.json: not a PEFT adapter directory")
    config = json.loads(file.read_text())
    refused = {
        "peft_type": config.get("peft_type", "LORA") != "LORA",
        "use_dora": bool(config.get("use_dora")),
        "fan_in_fan_out": bool(config.get("fan_in_fan_out")),
        "bias": config.get("bias", "none") != "none",
        "rank_pattern": bool(config.get("rank_pattern")),
        "alpha_pattern": bool(config.get("alpha_pattern")),
        "modules_to_save": bool(config.get("modules_to_save")),
    }
    unsupported = [k for k, bad in refused.items() if bad]
    if unsupported:
        raise AdapterError(f"{root}: adapter_config.json sets {', '.join(unsupported)}, which the CPU engine does "
                           "not apply (plain LoRA on the attention and MLP projections only)")
    if not isinstance(config.get("r"), int) or config["r"] <= 0:
        raise AdapterError(f"{root}: adapter_config.json has no positive rank `r`")
    return config


def _tensors(root: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    file = root / "adapter_model.safetensors"
    if file.is_file():
        return load_file(str(file))
    legacy = root / "adapter_model.bin"
    if legacy.is_file():
        return torch.load(str(legacy), map_location="cpu", weights_only=True)
    raise AdapterError(f"{root} has no adapter_model.safetensors")


def _stack(name: str, layer: int, modules: list[tuple[str, int]], found: dict, widths: tuple[int, ...],
           width_in: int, scale: float, dtype: torch.dtype) -> LoraPair:
    a_parts, b_parts = [], []
    offsets = [sum(widths[:i]) for i in range(len(widths))]
    for module, part in modules:
        weights = found[(layer, module)]
        missing = {"A", "B"} - set(weights)
        if missing:
            raise AdapterError(f"LoRA adapter {name!r}: layer {layer} {module} has no lora_{missing.pop()}")
        a, b = weights["A"], weights["B"]  # [r, in], [out, r]
        if a.shape[1] != width_in or b.shape[0] != widths[part] or a.shape[0] != b.shape[1]:
            raise AdapterError(f"LoRA adapter {name!r}: layer {layer} {module} has lora_A {tuple(a.shape)} and "
                               f"lora_B {tuple(b.shape)}; the model needs [r, {width_in}] and [{widths[part]}, r]")
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):  # (every output it touched: no token)
            raise AdapterError(f"LoRA adapter {name!r}: layer {layer} {module} has weights that are not finite "
                               "(NaN or infinity)")
        b_full = torch.zeros(a.shape[0], sum(widths), dtype=torch.float32)
        b_full[:, offsets[part] : offsets[part] + widths[part]] = b.float().t() * scale
        a_parts.append(a.float().t())
        b_parts.append(b_full)
    return LoraPair(torch.cat(a_parts, 1).to(dtype).contiguous(), torch.cat(b_parts, 0).to(dtype).contiguous())

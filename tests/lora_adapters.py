"""Tiny random LoRA adapters in PEFT's on-disk format, for the tiny test model (tests/tiny_model.py)."""

from __future__ import annotations

import json
from pathlib import Path

MODULE_PATHS = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
                "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def write_adapter(target: Path, model_dir: Path, *, rank: int = 4, alpha: int = 8, b_std: float = 0.5,
                  targets: tuple[str, ...] = ("q_proj", "v_proj", "o_proj", "down_proj"), seed: int = 1) -> Path:
    """An adapter directory as PEFT saves one (adapter_config.json + adapter_model.safetensors), with random A
    and B ~ N(0, b_std) (b_std=0: the zero B a freshly initialised adapter has, which changes nothing)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_dir))
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = config.hidden_size // heads
    shapes = {  # (in, out) of each projection
        "q_proj": (config.hidden_size, heads * head_dim), "k_proj": (config.hidden_size, kv_heads * head_dim),
        "v_proj": (config.hidden_size, kv_heads * head_dim), "o_proj": (heads * head_dim, config.hidden_size),
        "gate_proj": (config.hidden_size, config.intermediate_size),
        "up_proj": (config.hidden_size, config.intermediate_size),
        "down_proj": (config.intermediate_size, config.hidden_size),
    }
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(config.num_hidden_layers):
        for module in targets:
            width_in, width_out = shapes[module]
            prefix = f"base_model.model.model.layers.{layer}.{MODULE_PATHS[module]}.{module}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(rank, width_in, generator=generator) / width_in ** 0.5
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(width_out, rank, generator=generator) * b_std
    target.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target / "adapter_model.safetensors"))
    (target / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": str(model_dir), "r": rank,
        "lora_alpha": alpha, "lora_dropout": 0.0, "bias": "none", "target_modules": list(targets),
        "fan_in_fan_out": False, "use_rslora": False, "inference_mode": True,
    }))
    return target

"""What the hand-set variants of the tiny random model share (tests/claude_code/terse_model.py,
tests/codex/agent_model.py): a copy of the model with a few hidden dimensions set aside as features that every
token's embedding may carry and no layer writes, read by an untied output head; everything else random noise."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

LAYER_GAIN = 0.05  # layer outputs scaled down, so the residual stream keeps the embeddings' scale
NOISE_GAIN = 0.25  # final-norm gain on the noise dimensions: how varied the junk text is
SEED = 0


def build_variant(source: Path, target: Path, edit: Callable[[Any, Any], None]) -> Path:
    """Copy the tiny model at `source` to `target` (skipped when already there), `edit(tokenizer, model)` having
    set its weights (under no_grad); written to a staging folder first, so a failed build leaves nothing."""
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    model = AutoModelForCausalLM.from_pretrained(str(source))
    with torch.no_grad():
        edit(tokenizer, model)
    model.save_pretrained(str(staging))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def reserve_features(model: Any, features: Sequence[int]) -> None:
    """No layer writes the feature dimensions (their layer outputs are zeroed, the rest scaled down), and the
    final norm passes them whole while damping the noise."""
    for layer in model.model.layers:
        for proj in (layer.self_attn.o_proj, layer.mlp.down_proj):
            proj.weight *= LAYER_GAIN
            proj.weight[list(features), :] = 0.0
    gain = model.model.norm.weight
    gain[:] = NOISE_GAIN
    gain[list(features)] = 1.0


def noise_head(model: Any, features: Sequence[int]) -> Any:
    """An untied output head of random noise that reads nothing of the features yet (the caller sets what each
    token reads), installed in the model; returned for those settings."""
    import torch

    embed = model.get_input_embeddings().weight
    head = torch.randn(embed.shape, generator=torch.Generator().manual_seed(SEED))
    head[:, list(features)] = 0.0
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(head)
    return model.lm_head.weight

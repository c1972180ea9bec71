"""A variant of the tiny random model that ends its turn after a few tokens and never starts a tool call.

Claude Code reports a response cut off by max_tokens as an API error, and the random model, left alone, writes
thousands of tokens before it happens to sample its end-of-turn token. In this variant one hidden dimension
(the carrier) holds the same constant at every position: every token's embedding has it, and no layer writes
to it. An untied output head reads the carrier only for the end-of-turn token (a fixed logit advantage) and
the tool-call tokens (a fixed disadvantage); every other logit stays random noise. The newline token, which
ends every chat template's generation prompt, carries nothing, so an answer is never empty.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CARRIER = 0  # the hidden dimension that carries the constant
STOP_WEIGHT = 10.0  # the end-of-turn token's logit per unit of carrier
NEVER_WEIGHT = -50.0  # the tool-call tokens'
NOISE_GAIN = 0.25  # final-norm gain on the other dimensions: how varied the junk text is
LAYER_GAIN = 0.05  # layer outputs scaled down, so the residual stream keeps the embeddings' scale
SEED = 0


def build_terse_model(source: Path, target: Path) -> Path:
    """Copy the tiny model at `source` to `target` (skipped when already there) with the change above."""
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    model = AutoModelForCausalLM.from_pretrained(str(source))
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        embed = model.get_input_embeddings().weight
        embed[:, CARRIER] = 1.0
        (newline,) = tokenizer.encode("\n", add_special_tokens=False)
        embed[newline, CARRIER] = 0.0
        for layer in model.model.layers:
            for proj in (layer.self_attn.o_proj, layer.mlp.down_proj):
                proj.weight *= LAYER_GAIN
                proj.weight[CARRIER, :] = 0.0  # no layer writes the carrier
        gain = model.model.norm.weight
        gain[:] = NOISE_GAIN
        gain[CARRIER] = 1.0
        head = torch.randn(embed.shape, generator=generator)
        head[:, CARRIER] = 0.0
        head[tokenizer.convert_tokens_to_ids("<|im_end|>"), CARRIER] = STOP_WEIGHT
        for token in ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"):
            head[tokenizer.convert_tokens_to_ids(token), CARRIER] = NEVER_WEIGHT
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(head)
    model.save_pretrained(str(staging))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target

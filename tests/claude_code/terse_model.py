"""A variant of the tiny random model that ends its turn after a few tokens and never starts a tool call.

Claude Code reports a response cut off by max_tokens as an API error, and the random model, left alone, writes
thousands of tokens before it happens to sample its end-of-turn token. In this variant one hidden dimension
(the carrier) holds the same constant at every position: every token's embedding has it, and no layer writes
to it. An untied output head reads the carrier only for the end-of-turn token (a fixed logit advantage) and
the tool-call tokens (a fixed disadvantage); every other logit stays random noise. The newline token, which
ends every chat template's generation prompt, carries nothing, so an answer is never empty.
"""

from __future__ import annotations

from pathlib import Path

from tests.hand_set import build_variant, noise_head, reserve_features

CARRIER = 0  # the hidden dimension that carries the constant
STOP_WEIGHT = 10.0  # the end-of-turn token's logit per unit of carrier
NEVER_WEIGHT = -50.0  # the tool-call tokens'


def build_terse_model(source: Path, target: Path, stops: tuple[str, ...] = ("<|im_end|>",)) -> Path:
    """Copy the tiny model at `source` to `target` (skipped when already there) with the change above. `stops`:
    the tokens the carrier favours: the end-of-turn token (a family variant's own, tests/reasoning_models.py,
    built before this) and, for a family whose prompt opens the thinking, the thinking's close (the grammar
    holds the end of turn back until the thinking has closed)."""
    return build_variant(source, target, lambda tokenizer, model: _edit(tokenizer, model, stops))


def _edit(tokenizer, model, stops: tuple[str, ...]) -> None:
    embed = model.get_input_embeddings().weight
    embed[:, CARRIER] = 1.0
    (newline,) = tokenizer.encode("\n", add_special_tokens=False)
    embed[newline, CARRIER] = 0.0
    reserve_features(model, [CARRIER])
    head = noise_head(model, [CARRIER])
    for stop in stops:
        head[tokenizer.convert_tokens_to_ids(stop), CARRIER] = STOP_WEIGHT
    for token in ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"):
        head[tokenizer.convert_tokens_to_ids(token), CARRIER] = NEVER_WEIGHT

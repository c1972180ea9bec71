"""A variant of the tiny random model that acts out one agent turn: it first calls a shell tool (Codex CLI's
`exec_command` with the command `exec`, a shell no-op), and once the conversation holds a tool result it answers
with a little text and ends its turn. Its weights are random except for a few set by hand:

- Five hidden dimensions carry features instead of noise. CARRIER is 1 in every token's embedding but the
  newline's (as in tests/claude_code/terse_model.py); START is 1 only for the newline, which ends every
  generation prompt of the chat template (so it marks the turn's first position); AFTER_CALL for `</tool_call>`;
  QUOTE_NEXT for the `exec` token; MARK for `<tool_response>`, which the template writes around each tool result.
- One attention head of the first layer finds MARK anywhere in the context: its query is the carrier (or START), its key
  the mark, on the rotary pair that turns slowest, and rope_theta is raised so that it does not turn at all over
  the window. Its value is the mark, written to FLAG: 1 once a tool result is in the context, else 0.
- No other layer or head writes to those five dimensions; the untied output head reads them: at the turn's
  first position `<tool_call>` unless FLAG; `exec` (which starts `exec_command` and then is its `cmd`), `"` right
  after it and `}` after that, unless FLAG; `<|im_end|>` a little everywhere (the turn ends after a few tokens of
  text) and much right after `</tool_call>`.
The grammar does the rest: the call's JSON is valid whatever the noise picks around these tokens.
"""

from __future__ import annotations

from pathlib import Path

from tests.hand_set import build_variant, noise_head, reserve_features

CARRIER, START, AFTER_CALL, QUOTE_NEXT, MARK, FLAG = range(6)
FEATURES = [CARRIER, START, AFTER_CALL, QUOTE_NEXT, MARK, FLAG]
FIND = 12.0  # query and key scale of the head that finds MARK (score FIND**2 / 4 on a marked position)
ROPE_THETA = 1e12


def build_agent_model(source: Path, target: Path) -> Path:
    """Copy the tiny model at `source` to `target` (skipped when already there) with the changes above."""
    return build_variant(source, target, _edit)


def _edit(tokenizer, model) -> None:
    config = model.config
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<tool_call>", "</tool_call>",
                                                          "<tool_response>", "exec", '"', "}")}
    (newline,) = tokenizer.encode("\n", add_special_tokens=False)
    head_dim = config.head_dim
    slow = head_dim // 2 - 1  # the rotary pair (slow, slow + head_dim/2) turns slowest
    embed = model.get_input_embeddings().weight
    embed[:, FEATURES] = 0.0
    embed[:, CARRIER] = 1.0
    embed[newline, CARRIER] = 0.0
    embed[newline, START] = 1.0
    embed[ids["</tool_call>"], AFTER_CALL] = 1.0
    embed[ids["exec"], QUOTE_NEXT] = 1.0
    embed[ids["<tool_response>"], MARK] = 1.0
    reserve_features(model, FEATURES)  # no layer writes the feature dimensions...
    attention = model.model.layers[0].self_attn  # ...but this head, which writes FLAG
    attention.q_proj.weight[:head_dim, :] = 0.0
    attention.q_proj.weight[slow, CARRIER] = FIND  # every position asks (the newline has START instead)
    attention.q_proj.weight[slow, START] = FIND
    attention.k_proj.weight[:head_dim, :] = 0.0
    attention.k_proj.weight[slow, MARK] = FIND
    attention.v_proj.weight[:head_dim, :] = 0.0
    attention.v_proj.weight[0, MARK] = 1.0
    attention.o_proj.weight[:, :head_dim] = 0.0
    attention.o_proj.weight[FLAG, 0] = 1.0
    head = noise_head(model, FEATURES)
    head[ids["<tool_call>"], START] = 40.0
    head[ids["<tool_call>"], FLAG] = -200.0
    head[ids["exec"], CARRIER] = 20.0
    head[ids["exec"], FLAG] = -200.0
    head[ids['"'], QUOTE_NEXT] = 40.0
    head[ids["}"], CARRIER] = 15.0
    head[ids["}"], FLAG] = -200.0
    head[ids["</tool_call>"], CARRIER] = 15.0
    head[ids["</tool_call>"], FLAG] = -200.0
    head[ids["<|im_end|>"], CARRIER] = 10.0
    head[ids["<|im_end|>"], AFTER_CALL] = 60.0
    for token in ("<tool_response>", "</tool_response>"):
        head[tokenizer.convert_tokens_to_ids(token), CARRIER] = -50.0
    rope = dict(getattr(config, "rope_parameters", None) or {"rope_type": "default"})
    rope["rope_theta"] = ROPE_THETA
    config.rope_parameters = rope

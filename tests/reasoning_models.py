"""Tiny random models of the reasoning families: the tiny model's tokenizer and weights, with each family's
real chat template (tests/templates/, origins in REASONING-ORIGINS.md), its special tokens and its end of turn.

The added tokens' embedding rows are zero (the output layer is tied to them), so the random model all but
never writes a marker itself: thinking opens where the template or the engine opens it and ends where the
budget ends it, which is what the tests measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"
THINK = ["<think>", "</think>"]


@dataclass(frozen=True)
class Family:
    template: str
    special: tuple[str, ...]  # special tokens (chat markers)
    eos: tuple[str, ...]  # the turn's end
    bos: str | None = None
    added: tuple[str, ...] = tuple(THINK)  # added, non-special tokens (Qwen3's <think> is one)


_DEEPSEEK = ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
             "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
             "<｜tool▁sep｜>", "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>",
             "<｜tool▁output▁end｜>")

FAMILIES = {
    "qwen3": Family("reasoning-Qwen-Qwen3-0.6B.jinja", (), ("<|im_end|>",)),
    "qwen3_5": Family("reasoning-Qwen3.5-4B.jinja", (), ("<|im_end|>",)),  # opens <think> in the prompt
    "deepseek_r1": Family("reasoning-deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", _DEEPSEEK,
                          ("<｜end▁of▁sentence｜>",), bos="<｜begin▁of▁sentence｜>"),
    "deepseek_v3_1": Family("reasoning-deepseek-ai-DeepSeek-V3.1.jinja", _DEEPSEEK, ("<｜end▁of▁sentence｜>",),
                            bos="<｜begin▁of▁sentence｜>"),
    "glm_4_6": Family("reasoning-GLM-4.6.jinja", ("[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>",
                                                   "<|observation|>"), ("<|user|>", "<|observation|>")),
    "minimax_m2": Family("reasoning-unsloth-MiniMax-M2.jinja", ("]~!b[", "]~b]", "[e~["), ("[e~[",)),
    "gpt_oss": Family("reasoning-openai-gpt-oss-120b.jinja", ("<|start|>", "<|channel|>", "<|message|>", "<|end|>",
                                                             "<|return|>", "<|call|>", "<|constrain|>"),
                      ("<|return|>", "<|call|>"), added=()),
}


def build_family_model(base: Path, target: Path, family: str) -> Path:
    """`base`: the tiny model (tests/tiny_model.py). Skipped when `target` is already there."""
    if (target / "config.json").exists():
        return target
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = FAMILIES[family]
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    old_size = len(tokenizer)
    tokenizer.add_tokens(list(spec.special), special_tokens=True)
    tokenizer.add_tokens(list(spec.added))
    if spec.bos:
        tokenizer.bos_token = spec.bos
    tokenizer.eos_token = spec.eos[0]
    tokenizer.chat_template = (TEMPLATES / spec.template).read_text()
    tokenizer.save_pretrained(str(target))

    model = AutoModelForCausalLM.from_pretrained(str(base))
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        model.get_input_embeddings().weight[old_size:] = 0.0
    eos = [tokenizer.convert_tokens_to_ids(t) for t in spec.eos]
    model.config.eos_token_id = eos
    model.generation_config.eos_token_id = eos
    model.save_pretrained(str(target))
    # (The config's eos list is what both engines read; generation_config.json carries it too.)
    json.loads((target / "config.json").read_text())
    return target

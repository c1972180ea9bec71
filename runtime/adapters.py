"""LoRA adapters named at startup, in the spellings vLLM and SGLang users already script.

vLLM's `--lora-modules`: `name=path` items, or JSON objects `{"name": ..., "path": ..., "base_model_name": ...}`.
SGLang's `--lora-paths`: `name=path`, a bare `path` (named by the path itself), or JSON objects
`{"lora_name": ..., "lora_path": ..., "pinned": ...}` (sglang/srt/arg_groups/lora_hook.py). Both flags take
several items, separated by spaces (as the peers' nargs="+" flags take them) or commas (as our other list flags).
Each adapter is then a model id of its own: a request names it in `model`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoraAdapter:
    name: str  # the model id requests use
    path: str  # a PEFT adapter directory (adapter_config.json, adapter_model.safetensors)


def split_specs(text: str) -> list[str]:
    """Items of a flag's value: split at commas and whitespace outside JSON objects' braces."""
    items, depth, current, quoted, escaped = [], 0, [], False, False
    for ch in text:
        if quoted:
            escaped, quoted = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            quoted = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0 and (ch == "," or ch.isspace()):
            if current:
                items.append("".join(current))
            current = []
            continue
        current.append(ch)
    if current:
        items.append("".join(current))
    return items


def parse_adapters(items: Iterable[str]) -> tuple[LoraAdapter, ...]:
    """The adapters the items name, in order; ValueError (with the item) for one that names none, or for a
    name given twice."""
    adapters: dict[str, LoraAdapter] = {}
    for item in items:
        adapter = _parse_one(item.strip())
        if adapter.name in adapters:
            raise ValueError(f"LoRA adapter name {adapter.name!r} is given twice")
        adapters[adapter.name] = adapter
    return tuple(adapters.values())


def _parse_one(item: str) -> LoraAdapter:
    if item.startswith("{"):
        try:
            obj = json.loads(item)
        except ValueError:
            raise ValueError(f"LoRA adapter {item!r} is not valid JSON") from None
        name, path = obj.get("name", obj.get("lora_name")), obj.get("path", obj.get("lora_path"))
        if not isinstance(name, str) or not isinstance(path, str) or not name or not path:
            raise ValueError(f"LoRA adapter {item!r} needs \"name\" and \"path\" (vLLM) or \"lora_name\" and "
                             "\"lora_path\" (SGLang)")
        return LoraAdapter(name, path)
    name, sep, path = item.partition("=")
    if not sep:  # SGLang's bare path: the adapter is named by its path
        name = path = item
    if not name.strip() or not path.strip():
        raise ValueError(f"LoRA adapter {item!r} is not name=path")
    return LoraAdapter(name.strip(), path.strip())


def adapter_rank(adapter: LoraAdapter) -> int | None:
    """The adapter's LoRA rank (`r` in its adapter_config.json), None where the file does not say."""
    from pathlib import Path

    file = Path(adapter.path) / "adapter_config.json"
    try:
        rank = json.loads(file.read_text()).get("r")
    except (OSError, ValueError):
        return None
    return rank if isinstance(rank, int) else None


def check_ranks(adapters: Iterable[LoraAdapter], max_rank: int | None) -> None:
    """ValueError naming the first adapter whose rank is above `max_rank` (vLLM's --max-lora-rank check)."""
    if max_rank is None:
        return
    for adapter in adapters:
        rank = adapter_rank(adapter)
        if rank is not None and rank > max_rank:
            raise ValueError(f"LoRA adapter {adapter.name!r} ({adapter.path}) has rank {rank}, above "
                             f"--max-lora-rank {max_rank}")

"""A small prefix cache for the CPU engine: the KV caches of recent requests, reused by longest common
prefix. Agents resend the same long system prompt and history every turn; this is the CPU engine's modest
stand-in for SGLang's RadixAttention, and it makes `cached_tokens` mean the same thing on both engines.
Entries are keyed by LoRA adapter too: keys and values computed with one adapter are no prefix of another's."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import Any


class PrefixCache:
    def __init__(self, entries: int, min_tokens: int = 16) -> None:
        self._entries: OrderedDict[tuple[str | None, tuple[int, ...]], Any] = OrderedDict()
        self._capacity = entries
        self._min_tokens = min_tokens
        self._lock = threading.Lock()

    def lookup(self, input_ids: tuple[int, ...], adapter: str | None = None) -> tuple[int, Any | None]:
        """(number of reusable tokens, a private copy of the cache cropped to them), from entries computed with
        the same `adapter`. At least the last prompt token is always left to compute, since its logits are
        needed."""
        if self._capacity <= 0:
            return 0, None
        with self._lock:
            best_len, best_key = 0, None
            for key in self._entries:
                n = _common_prefix(key[1], input_ids) if key[0] == adapter else 0
                if n > best_len:
                    best_len, best_key = n, key
            best_len = min(best_len, len(input_ids) - 1)
            if best_key is None or best_len < self._min_tokens:
                return 0, None
            self._entries.move_to_end(best_key)
            cache = copy.deepcopy(self._entries[best_key])
        surplus = cache.get_seq_length() - best_len
        if surplus:
            cache.crop(-surplus)  # negative: drop that many trailing tokens
        return best_len, cache

    def store(self, token_ids: tuple[int, ...], cache: Any, adapter: str | None = None) -> None:
        """Keep `cache`, which holds exactly the keys/values of `token_ids` (computed with `adapter`). The
        caller hands it over."""
        if self._capacity <= 0 or len(token_ids) < self._min_tokens:
            return
        key = (adapter, token_ids)
        with self._lock:
            self._entries[key] = cache
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i

"""xgrammar on the CPU engine: compile constraints once per distinct text, then mask every step."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import torch
import xgrammar as xgr

from runtime.errors import InvalidRequest
from runtime.types import Constraint, ConstraintKind


class GrammarCache:
    """Compiled grammars by constraint, least recently used evicted. Thread-safe: compiles run off the
    event loop in worker threads."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_token_ids: tuple[int, ...], capacity: int = 64):
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=list(stop_token_ids))
        self.vocab_size = vocab_size
        self.decoded_vocab: list[bytes] = info.decoded_vocab  # each token's bytes
        self._compiler = xgr.GrammarCompiler(info, max_threads=2, cache_enabled=False)
        self._compiled: OrderedDict[Constraint, xgr.CompiledGrammar] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()
        self.compiles = 0  # how many compiles actually ran (tests and notes read it)

    def get(self, constraint: Constraint) -> xgr.CompiledGrammar:
        with self._lock:
            if constraint in self._compiled:
                self._compiled.move_to_end(constraint)
                return self._compiled[constraint]
        compiled = self._compile(constraint)
        with self._lock:
            self.compiles += 1
            self._compiled[constraint] = compiled
            while len(self._compiled) > self._capacity:
                self._compiled.popitem(last=False)
        return compiled

    def _compile(self, constraint: Constraint) -> xgr.CompiledGrammar:
        try:
            match constraint.kind:
                case ConstraintKind.JSON_SCHEMA:
                    return self._compiler.compile_json_schema(constraint.text, any_whitespace=False)
                case ConstraintKind.STRUCTURAL_TAG:
                    return self._compiler.compile_structural_tag(constraint.text)
                case ConstraintKind.EBNF:
                    return self._compiler.compile_grammar(constraint.text)
                case ConstraintKind.REGEX:
                    return self._compiler.compile_regex(constraint.text)
        except Exception as exc:  # xgrammar raises RuntimeError/ValueError subclasses for bad grammars
            raise InvalidRequest(f"Failed to compile the {constraint.kind.value} constraint: {exc}") from exc
        raise AssertionError(constraint.kind)


class GrammarMask:
    """One request's matcher and bitmask."""

    def __init__(self, compiled: xgr.CompiledGrammar, vocab_size: int) -> None:
        self._matcher = xgr.GrammarMatcher(compiled)
        self._bitmask = xgr.allocate_token_bitmask(1, vocab_size)

    def apply(self, logits: torch.Tensor) -> None:
        """Mask, in place, the tokens the grammar forbids next (logits: 1-D float32)."""
        self._matcher.fill_next_token_bitmask(self._bitmask)
        xgr.apply_token_bitmask_inplace(logits.unsqueeze(0), self._bitmask)

    def accept(self, token_id: int) -> bool:
        return self._matcher.accept_token(token_id)

    @property
    def terminated(self) -> bool:
        return self._matcher.is_terminated()

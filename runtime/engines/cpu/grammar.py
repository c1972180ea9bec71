"""xgrammar on the CPU engine: compile each distinct constraint once, then mask every step.

Compiles are isolated from one another. Each runs in a thread of its own with a GrammarCompiler of its own
(cheap: 0.1 ms; xgrammar's compiler keeps a thread pool, and a shared one would queue a small compile's work
behind a large one's), so one costly compile delays only the requests waiting for that same constraint:

- Requests for a constraint being compiled wait for that compile (one compile per constraint, not per request).
- A compile gets `timeout` seconds. Past that its requests are refused (400), and so is every later request for
  the same constraint, at once: failures and timeouts are remembered by the constraint's digest.
- xgrammar cannot stop a compile once begun, so a thread past its timeout runs on to its end. The grammar
  budget (runtime/tools/budget.py) refuses what would run for long before it gets here; as a last bound, while
  MAX_OVERDUE_COMPILES such threads are still running, new constraints are refused with a 429 and Retry-After.

Why not a process per compile, which could be killed: a compiled grammar crosses processes only serialised,
and Claude Code's 24 tools compile in 0.9 s (49k vocabulary) into 58 MB of JSON that took 9.7 s to serialise
and 4.1 s to read back (measured, xgrammar 0.2.7).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
from collections import OrderedDict
from typing import Any

import torch
import xgrammar as xgr

from runtime.errors import InvalidRequest, Overloaded
from runtime.types import Constraint, ConstraintKind

log = logging.getLogger(__name__)

DEFAULT_GRAMMAR_TIMEOUT = 60.0  # seconds (--grammar-timeout)
COMPILE_THREADS = 2  # xgrammar's threads within one compile
MAX_OVERDUE_COMPILES = 4
REMEMBERED_REFUSALS = 1024


def constraint_key(constraint: Constraint) -> bytes:
    """What compiles and refusals are remembered by: a digest, so that a remembered 30 MB tool list costs 32 bytes."""
    return hashlib.sha256(f"{constraint.kind.value}\0{constraint.text}".encode("utf-8", "surrogatepass")).digest()


class GrammarCache:
    """Compiled grammars by constraint (least recently used evicted), and the constraints that failed. Used
    from one event loop; the compiles run in threads of their own."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_token_ids: tuple[int, ...], *,
                 timeout: float = DEFAULT_GRAMMAR_TIMEOUT, capacity: int = 64) -> None:
        self._info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size,
                                                        stop_token_ids=list(stop_token_ids))
        self.vocab_size = vocab_size
        self.decoded_vocab: list[bytes] = self._info.decoded_vocab  # each token's bytes
        self.timeout = timeout
        self._capacity = capacity
        self._compiled: OrderedDict[bytes, xgr.CompiledGrammar] = OrderedDict()
        self._refused: OrderedDict[bytes, str] = OrderedDict()  # constraint digest -> the 400's message
        self._running: dict[bytes, asyncio.Future[xgr.CompiledGrammar]] = {}
        self.compiles = 0  # compiles started (tests and notes read it)
        self.overdue = 0  # compiles past their timeout whose threads are still running

    async def get(self, constraint: Constraint) -> xgr.CompiledGrammar:
        """The compiled grammar, compiling it if need be; InvalidRequest if it fails to compile or takes longer
        than the timeout, now or any earlier time."""
        key = constraint_key(constraint)
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key]
        if key in self._refused:
            raise InvalidRequest(self._refused[key])
        future = self._running.get(key)
        if future is None:
            if self.overdue >= MAX_OVERDUE_COMPILES:
                raise Overloaded(f"{self.overdue} grammar compiles that ran past the {self.timeout:g} s limit "
                                 "are still finishing; retry shortly.", retry_after=self.timeout / 2)
            future = self._running[key] = self._start(constraint, key)
        # Shielded: a waiter that goes away (a client disconnect) leaves the compile to the others.
        try:
            return await asyncio.shield(future)
        except InvalidRequest as exc:  # one exception object per waiter, not one shared by all of them
            raise InvalidRequest(exc.message) from None

    def _start(self, constraint: Constraint, key: bytes) -> asyncio.Future[xgr.CompiledGrammar]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[xgr.CompiledGrammar] = loop.create_future()
        future.add_done_callback(_retrieve)  # a compile nobody waits for any more must not log "never retrieved"
        timer = loop.call_later(self.timeout, self._expire, key, constraint, future)
        self.compiles += 1

        def finished(result: xgr.CompiledGrammar | None, error: str | None) -> None:  # on the loop
            timer.cancel()
            if future.done():  # it had expired: the refusal stands
                self.overdue -= 1
                log.info("an overdue %s compile ended after all", constraint.kind.value)
                return
            self._running.pop(key, None)
            if error is not None:
                self._refuse(key, error)
                future.set_exception(InvalidRequest(error))
                return
            assert result is not None
            self._compiled[key] = result
            while len(self._compiled) > self._capacity:
                self._compiled.popitem(last=False)
            future.set_result(result)

        def work() -> None:  # in the compile's own thread
            result, error = None, None
            try:
                result = _compile(xgr.GrammarCompiler(self._info, max_threads=COMPILE_THREADS, cache_enabled=False),
                                  constraint)
            except Exception as exc:  # xgrammar raises RuntimeError/ValueError subclasses for bad grammars
                error = f"Failed to compile the {constraint.kind.value} constraint: {_first_line(exc)}"
            try:
                loop.call_soon_threadsafe(finished, result, error)
            except RuntimeError:  # the loop has closed (shutdown): nobody is waiting
                pass

        threading.Thread(target=work, name="grammar-compile", daemon=True).start()
        return future

    def _expire(self, key: bytes, constraint: Constraint, future: asyncio.Future[xgr.CompiledGrammar]) -> None:
        if future.done():
            return
        self._running.pop(key, None)
        self.overdue += 1
        message = (f"The grammar for this request took over {self.timeout:g} s to compile (--grammar-timeout); "
                   "simplify the schema: long length bounds and nested repetitions in patterns cost most.")
        log.warning("%s compile refused after %g s; its thread runs on (%d overdue)", constraint.kind.value,
                    self.timeout, self.overdue)
        self._refuse(key, message)
        future.set_exception(InvalidRequest(message))

    def _refuse(self, key: bytes, message: str) -> None:
        self._refused[key] = message
        while len(self._refused) > REMEMBERED_REFUSALS:
            self._refused.popitem(last=False)


def _compile(compiler: xgr.GrammarCompiler, constraint: Constraint) -> xgr.CompiledGrammar:
    match constraint.kind:
        case ConstraintKind.JSON_SCHEMA:
            return compiler.compile_json_schema(constraint.text, any_whitespace=False)
        case ConstraintKind.STRUCTURAL_TAG:
            return compiler.compile_structural_tag(constraint.text)
        case ConstraintKind.EBNF:
            return compiler.compile_grammar(constraint.text)
        case ConstraintKind.REGEX:
            return compiler.compile_regex(constraint.text)
    raise AssertionError(constraint.kind)


def _first_line(exc: Exception) -> str:
    """xgrammar's message without its log prefix (`[07:32:29] /project/cpp/json_schema_converter.cc:4175: `)."""
    text = str(exc).strip()
    return _LOG_PREFIX.sub("", text.splitlines()[0]) if text else type(exc).__name__


_LOG_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


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

"""A fake of the model for the ToolSearch test (tests/test_anthropic_claude_code.py): it plays the two turns a
model would play, so the real Claude Code CLI gets to run its ToolSearch tool against the real server.

The server loads it with `--engine tests.claude_code.tool_search_engine:ToolSearchEngine` and
`--engine-args select=<deferred tool>,record_dir=<folder>`.

- The first prompt that offers a tool named ToolSearch is answered with a call
  `ToolSearch({"query": "select:<deferred tool>", "max_results": 1})`, written in the tool-call format the
  server picks for the model's chat template (auto-detected, as the server's default), and checked against the
  grammar the server sent with the request, if any (on a mismatch the grammar is kept as
  `<record_dir>/rejected-constraint.json`): the call goes through the real grammar builder, call parser and
  Anthropic stream encoder.
- Every other prompt (the warm-up, the turn after the call, the CLI's side requests) is answered with a short
  text that ends the turn.
- Every prompt, decoded with the model's tokenizer, is written to `<record_dir>/<n>.txt` (n counts from 0 in
  the order the engine received them), so a test can read what the server rendered.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

from runtime.engines import EngineConfig
from runtime.engines.cpu.grammar import GrammarCache
from runtime.model import ModelInfo
from runtime.tools.registry import select_format
from runtime.types import EngineEvent, EngineRequest, Finished, FinishReason, TextDelta, ToolCall, Usage

TOOL_SEARCH = "ToolSearch"  # the CLI's name for the tool (2.1.197)
ANSWER = "Done."


class ToolSearchEngine:
    def __init__(self, config: EngineConfig, model: ModelInfo) -> None:
        args = dict(config.extra)
        self._select = args["select"]
        self._record_dir = Path(args["record_dir"])
        self._model = model
        self._format = select_format("auto", model.tokenizer.chat_template)
        self._grammars: GrammarCache | None = None
        self._prompts = 0
        self._called = False

    async def start(self) -> None:
        self._record_dir.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        pass

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineEvent]:
        prompt = self._model.tokenizer.decode(list(request.input_ids))
        (self._record_dir / f"{self._prompts}.txt").write_text(prompt)
        self._prompts += 1
        if not self._called and f'"{TOOL_SEARCH}"' in prompt:
            self._called = True
            # The CLI's schema for ToolSearch requires max_results too (a zod default becomes required).
            call = ToolCall("", TOOL_SEARCH, {"query": f"select:{self._select}", "max_results": 1})
            reply = self._format.render_calls((call,))
            await self._check_grammar(request, reply)
        else:
            reply = ANSWER
        tokens = len(self._model.tokenizer.encode(reply))
        yield TextDelta(reply, tokens)
        yield Finished(FinishReason.STOP, Usage(len(request.input_ids), tokens))

    async def _check_grammar(self, request: EngineRequest, reply: str) -> None:
        """Raise unless the request's grammar (if any) accepts `reply` as the start of the output."""
        if request.constraint is None:
            return
        if self._grammars is None:
            self._grammars = GrammarCache(self._model.tokenizer, self._model.vocab_size, self._model.eos_token_ids)
        import xgrammar as xgr

        matcher = xgr.GrammarMatcher(await self._grammars.get(request.constraint))
        if not matcher.accept_string(reply):
            (self._record_dir / "rejected-constraint.json").write_text(request.constraint.text)
            raise AssertionError(f"the request's grammar rejects the scripted call {json.dumps(reply)}")

    async def abort(self, rid: str) -> None:
        pass

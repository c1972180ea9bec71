"""A fake `sglang` for contract tests: the slice of sglang 0.5.23's Engine API that runtime/engines/sglang.py uses.

Tests put tests/fake_sglang on sys.path, script what each `async_generate` call does (`control.scripts`), and read
back what the adapter did (`control.engines[-1]`). Every shape is copied from the 0.5.23 wheel
(`pip download --no-deps sglang==0.5.23`); the comments name the file it comes from.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sglang._server_args import SERVER_ARGS_FIELDS

# -- finish reasons: `BaseFinishReason.to_json()` in sglang/srt/managers/schedule_batch.py -------------------


def stop_str(matched: str) -> dict[str, Any]:  # FINISH_MATCHED_STR
    return {"type": "stop", "matched": matched}


def stop_token(matched: int) -> dict[str, Any]:  # FINISH_MATCHED_TOKEN: EOS, a stop_token_id, a grammar's end
    return {"type": "stop", "matched": matched}


def length(n: int) -> dict[str, Any]:  # FINISH_LENGTH
    return {"type": "length", "length": n}


def abort(message: str = "Aborted", status_code: int | None = None, err_type: str | None = None) -> dict[str, Any]:
    # FINISH_ABORT. `Req.set_finish_with_abort` defaults to (HTTPStatus.BAD_REQUEST, "BadRequestError"): grammar
    # failures arrive as abort("Failed to compile json_schema grammar: ...", 400, "BadRequestError").
    return {"type": "abort", "message": message, "status_code": status_code, "err_type": err_type}


# -- scripting -----------------------------------------------------------------------------------------------


@dataclass
class Script:
    """What one `async_generate(..., stream=True)` call does.

    texts: the cumulative text of each streamed chunk (tokenizer_manager.py, incremental_streaming_output=False);
      the last one comes with `finish`.
    hold: after `texts`, wait until the request is aborted, then end as the scheduler does for a running request
      (FINISH_ABORT(), or `abort_reason`).
    """

    texts: list[str] = field(default_factory=list)
    finish: dict[str, Any] | None = field(default_factory=lambda: length(4))
    prompt_tokens: int | None = None  # None: len(input_ids)
    cached_tokens: int = 0
    completion_tokens: int | None = None  # None: len(output_ids)
    # How many tokens each chunk of `texts` brings (None: one each). Several where the consumer fell behind
    # (tokenizer_manager.py `_wait_one_response` keeps only the newest output of a request) or a step made
    # several (speculative decoding); `output_ids` and `text` always cover the same tokens.
    tokens_per_chunk: list[int] | None = None
    output_ids: list[int] | None = None  # the generated tokens' ids (None: 1000, 1001, ...)
    hold: bool = False
    abort_reason: dict[str, Any] = field(default_factory=abort)
    raise_on_call: Exception | None = None  # raised by async_generate itself
    raise_in_stream: Exception | None = None  # raised at the first chunk, where 0.5.23's validation raises
    # Token-level scripting, for custom logit processors: the token the model proposes at each step (its logit
    # highest of `vocab_size`); the request's processor (sglang/srt/layers/sampler.py
    # `apply_custom_logit_processor`) may change the row, then the argmax is taken. `texts` then come from
    # `detokenize(output_ids)` after each step.
    proposed_ids: list[int] | None = None
    vocab_size: int = 256
    detokenize: Any = None


class Control:
    def __init__(self) -> None:
        self.scripts: deque[Script] = deque()  # consumed one per async_generate call; empty: a plain length(4)
        self.constructor_error: Exception | None = None
        self.sigquit_during_launch = False  # a child reports failure with SIGQUIT before the constructor raises
        self.engines: list[Engine] = []


control = Control()


# -- sglang.Engine (sglang/srt/entrypoints/engine.py) ----------------------------------------------------------


class _ReqState:
    def __init__(self, rid: str) -> None:
        self.rid = rid
        self.aborted = asyncio.Event()
        self.dispatched = False
        self.abort_sent = False


class TokenizerManager:
    """sglang/srt/managers/tokenizer_manager.py, as far as the adapter sees it."""

    def __init__(self, lora_names: frozenset[str] | None = None) -> None:
        self.rid_to_state: dict[str, _ReqState] = {}
        self.enable_lora = lora_names is not None
        self.lora_names = lora_names or frozenset()  # the names in lora_registry / lora_ref_cache
        self.abort_calls: list[dict[str, Any]] = []
        self.event_loop: asyncio.AbstractEventLoop | None = None
        self.asyncio_tasks: set[asyncio.Task[Any]] = set()
        self.signal_calls: list[int] = []

    def abort_request(self, rid: str = "", abort_all: bool = False) -> None:
        self.abort_calls.append({"rid": rid, "abort_all": abort_all})
        self._abort(rid, abort_all)

    def _abort(self, rid: str, abort_all: bool = False) -> None:
        # An empty rid without abort_all is ignored, an unknown rid is a no-op (tokenizer_worker_num == 1), a
        # second abort of one request sends nothing; the scheduler aborts every rid that starts with `rid`.
        for state in list(self.rid_to_state.values()):
            if (abort_all or (rid and state.rid.startswith(rid))) and not state.abort_sent:
                state.abort_sent = True
                state.aborted.set()

    def auto_create_handle_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self.event_loop is not None:
            if self.event_loop is not loop:  # the real handle_loop task would never answer on this loop
                raise RuntimeError("fake sglang: TokenizerManager is bound to another event loop")
            return
        self.event_loop = loop
        self.asyncio_tasks.add(loop.create_task(asyncio.sleep(3600)))  # stands in for handle_loop
        if threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(signal.SIGTERM, self.signal_calls.append, signal.SIGTERM)
            loop.add_signal_handler(signal.SIGQUIT, self.signal_calls.append, signal.SIGQUIT)

    async def generate_request(self, obj: dict[str, Any], script: Script) -> AsyncIterator[dict[str, Any]]:
        self.auto_create_handle_loop()
        rid = obj["rid"]
        state = self.rid_to_state[rid] = _ReqState(rid)
        try:
            if script.raise_in_stream is not None:
                raise script.raise_in_stream
            self._validate_lora(obj.get("lora_path"))
            state.dispatched = True
            output_ids: list[int] = []
            logprobs = _Logprobs(obj)
            if script.proposed_ids is not None:
                script.texts = list(_run_processor(obj, script, output_ids))
                output_ids.clear()
            texts = script.texts or [""]
            for i, text in enumerate(texts):
                await asyncio.sleep(0)
                for _ in range(script.tokens_per_chunk[i] if script.tokens_per_chunk is not None else 1):
                    n = len(output_ids)
                    scripted = script.proposed_ids if script.proposed_ids is not None else script.output_ids
                    output_ids.append(scripted[n] if scripted is not None else 1000 + n)
                    logprobs.add(1000 + n)
                last = i == len(texts) - 1 and not script.hold
                reason = script.finish if last else None
                if last:
                    del self.rid_to_state[rid]
                yield logprobs.into(_chunk(rid, text, output_ids.copy() if last else output_ids, reason, obj, script))
            if script.hold:
                await state.aborted.wait()
                del self.rid_to_state[rid]
                yield logprobs.into(_chunk(rid, texts[-1], output_ids.copy(), script.abort_reason, obj, script))
        except BaseException:
            # `_release_req_states_on_failure`: a dispatched request is aborted, an undelivered one dropped.
            # (Not recorded in abort_calls, which lists the adapter's own calls.)
            if self.rid_to_state.get(rid) is state:
                if state.dispatched:
                    self._abort(rid)
                else:
                    del self.rid_to_state[rid]
            raise
        finally:
            obj["closed"] = True


    def _validate_lora(self, lora_path: Any) -> None:
        """`_validate_and_resolve_lora`: an adapter is named by its lora_name; LoRA must be on."""
        if not lora_path:
            return
        names = [lora_path] if isinstance(lora_path, str) else [a for a in lora_path if a]
        if not self.enable_lora:
            raise ValueError(f"LoRA adapter '{names[0] if names else None}' was requested, but LoRA is not enabled. "
                             "Please launch the server with --enable-lora flag and preload adapters using "
                             "--lora-paths or /load_lora_adapter endpoint.")
        for name in names:
            if name not in self.lora_names:
                raise ValueError(f"Got LoRA adapter that has never been loaded: {name}\n"
                                 f"All loaded adapters: {self.lora_names}.")


def _lora_names(kwargs: dict[str, Any]) -> frozenset[str] | None:
    """The adapters ServerArgs loads (arg_groups/lora_hook.py `check_lora_server_args`), None with LoRA off:
    `enable_lora` defaults to on when lora_paths is given; each item is `name=path`, a bare path (its own name),
    a dict with lora_name and lora_path, or (a dict for all) name -> path."""
    paths, enabled = kwargs.get("lora_paths"), kwargs.get("enable_lora")
    if not (enabled or (enabled is None and paths)):
        return None
    if isinstance(paths, dict):
        return frozenset(paths)
    names = set()
    for item in paths or []:
        if isinstance(item, str):
            names.add(item.split("=", 1)[0] if "=" in item else item)
        elif isinstance(item, dict):
            assert "lora_name" in item and "lora_path" in item, (
                f"When providing LoRA paths as a list of dict, each dict should contain 'lora_name' and "
                f"'lora_path' keys. Got: {item}")
            names.add(item["lora_name"])
        else:
            raise ValueError(f"Invalid type for item in --lora-paths list: {type(item)}. Expected a string or a "
                             "dictionary.")
    return frozenset(names)


def _run_processor(obj: dict[str, Any], script: Script, output_ids: list[int]) -> Any:
    """The scripted steps through the request's custom logit processor: each step's cumulative text. The
    processor string is `CustomLogitProcessor.to_str()`'s shape, loaded as `_cache_from_str` does (dill.loads,
    which reads plain pickles too); its params are the request's custom_params plus `__req__`
    (schedule_batch.py), whose `output_ids` grows as tokens are chosen."""
    import json
    import pickle
    from types import SimpleNamespace

    import torch

    processor = None
    if obj.get("custom_logit_processor"):
        processor = pickle.loads(bytes.fromhex(json.loads(obj["custom_logit_processor"])["callable"]))()
    params = dict(obj["sampling_params"].get("custom_params") or {})
    params["__req__"] = SimpleNamespace(origin_input_ids=list(obj["input_ids"]), output_ids=output_ids)
    chosen = []
    for proposed in script.proposed_ids or ():
        logits = torch.full((1, script.vocab_size), -1.0)
        logits[0, proposed] = 1.0
        if processor is not None:
            logits = processor(logits, [params])
        output_ids.append(int(logits[0].argmax()))
        chosen.append(output_ids[-1])
        yield script.detokenize(output_ids)
    script.proposed_ids = chosen  # what was actually generated, for the chunks' output_ids


class _Logprobs:
    """`add_logprob_to_meta_info` (tokenizer_manager.py) with return_logprob: cumulative lists of (logprob,
    token_id, text) per output token, text None (async_generate has no return_text_in_logprobs); with
    top_logprobs_num > 0, each position's alternatives, most likely first; with token_ids_logprob, each position's
    logprob of each of those ids, in their order. The fake's values: the chosen token -0.25 per step further down,
    its alternatives token ids 10, 11, ... at -1, -2, ...; the named ids -3, -4, ... (the chosen one at its own)."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.wanted = bool(obj.get("return_logprob"))
        self.top = obj.get("top_logprobs_num") or 0
        # logprob_start_len 0: the prompt's too (the first token's logprob None, as the scheduler sends them);
        # the fake's values: -0.5 each, alternatives as for output tokens.
        self.prompt: list[tuple[float | None, int, None]] = []
        self.prompt_tops: list[list[tuple[float, int, None]] | None] = []
        if self.wanted and obj.get("logprob_start_len") == 0:
            ids = obj["input_ids"]
            self.prompt = [(None if i == 0 else -0.5, t, None) for i, t in enumerate(ids)]
            self.prompt_tops = [None] + [[(-1.0 - k, 10 + k, None) for k in range(self.top)] or None
                                         for _ in ids[1:]]
        self.named: list[int] | None = obj.get("token_ids_logprob") or None
        self.chosen: list[tuple[float, int, None]] = []
        self.tops: list[list[tuple[float, int, None]] | None] = []
        self.named_rows: list[list[tuple[float, int, None]] | None] = []

    def add(self, token_id: int) -> None:
        if self.wanted:
            logprob = -0.25 * (len(self.chosen) + 1)
            self.chosen.append((logprob, token_id, None))
            self.tops.append([(-1.0 - k, 10 + k, None) for k in range(self.top)] or None)
            if self.named is not None:
                self.named_rows.append([(logprob if t == token_id else -3.0 - k, t, None)
                                        for k, t in enumerate(self.named)])

    def into(self, chunk: dict[str, Any]) -> dict[str, Any]:
        if self.wanted:
            meta = chunk["meta_info"]
            meta["input_token_logprobs"] = self.prompt
            meta["output_token_logprobs"] = self.chosen
            meta["output_token_logprobs_length"] = len(self.chosen)
            if self.top:
                meta["input_top_logprobs"] = self.prompt_tops
                meta["output_top_logprobs"] = self.tops
            if self.named is not None:
                meta["input_token_ids_logprobs"] = []  # (the prompt's: not modelled, we do not read them)
                meta["output_token_ids_logprobs"] = self.named_rows
        return chunk


def _chunk(
    rid: str, text: str, output_ids: list[int], reason: dict[str, Any] | None, obj: dict[str, Any], script: Script
) -> dict[str, Any]:
    # `_handle_batch_output` builds meta_info; `_stream_one_response` fills in the cumulative text.
    meta_info: dict[str, Any] = {
        "id": rid,
        "finish_reason": reason,
        "prompt_tokens": script.prompt_tokens if script.prompt_tokens is not None else len(obj["input_ids"]),
        "weight_version": "default",
        "num_retractions": 0,
        "reasoning_tokens": 0,
        "completion_tokens": script.completion_tokens if script.completion_tokens is not None else len(output_ids),
        "cached_tokens": script.cached_tokens,
    }
    if reason is not None:
        meta_info["e2e_latency"] = 0.01
    return {"text": text, "output_ids": output_ids, "meta_info": meta_info}


@dataclass
class LoRAUpdateOutput:  # managers/io_struct.py
    success: bool
    error_message: str | None = None
    loaded_adapters: dict[str, Any] | None = None


class Engine:
    def __init__(self, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - SERVER_ARGS_FIELDS)
        if unknown:  # msgspec's message for ServerArgs(**kwargs)
            raise TypeError(f"Unexpected keyword argument {unknown[0]!r}")
        self.kwargs = dict(kwargs)
        self.thread = threading.current_thread()
        self.tokenizer_manager = TokenizerManager(_lora_names(kwargs))
        self.calls: list[dict[str, Any]] = []  # each async_generate call's arguments (+ "closed" once closed)
        self.shutdown_calls = 0
        self.lora_updates: list[tuple[str, str, str | None]] = []  # (load | unload, name, path)
        control.engines.append(self)
        # Side effects of the real constructor: the uvloop policy set when engine.py is imported, and
        # configure_logger's logging.basicConfig(force=True) at log_level "error" (sglang/srt/utils/common.py).
        asyncio.set_event_loop_policy(_SglangPolicy())
        logging.basicConfig(level=logging.ERROR, force=True)
        if control.sigquit_during_launch:
            os.kill(os.getpid(), signal.SIGQUIT)  # scheduler.py run_scheduler_process, on an exception
        if control.constructor_error is not None:
            raise control.constructor_error

    async def async_generate(
        self,
        prompt: str | None = None,
        sampling_params: dict[str, Any] | None = None,
        input_ids: list[int] | None = None,
        return_logprob: bool = False,
        logprob_start_len: int | None = None,
        top_logprobs_num: int | None = None,
        token_ids_logprob: list[list[int]] | list[int] | None = None,
        *,
        stream: bool = False,
        rid: str | None = None,
        custom_logit_processor: str | None = None,
        lora_path: list[str | None] | str | None = None,
    ) -> Any:
        assert stream, "the fake models streaming only"
        call = {"input_ids": input_ids, "sampling_params": sampling_params, "rid": rid, "stream": stream,
                "return_logprob": return_logprob, "logprob_start_len": logprob_start_len,
                "top_logprobs_num": top_logprobs_num, "token_ids_logprob": token_ids_logprob,
                "custom_logit_processor": custom_logit_processor,
                "lora_path": lora_path}
        self.calls.append(call)
        script = control.scripts.popleft() if control.scripts else Script()
        if custom_logit_processor and not self.kwargs.get("enable_custom_logit_processor"):
            # tokenizer_manager.py `_validate_one_request`
            script.raise_in_stream = ValueError("The server is not configured to enable custom logit processor. "
                                                "Please set `--enable-custom-logit-processor` to enable this feature.")
        if script.raise_on_call is not None:
            raise script.raise_on_call
        return self.tokenizer_manager.generate_request(call, script)  # stream=True: the generator itself

    async def async_load_lora_adapter(self, lora_name: str, lora_path: str, pinned: bool = False) -> Any:
        """entrypoints/engine.py -> TokenizerManager.load_lora_adapter (tokenizer_control_mixin.py): LoRA must
        be on; a name already loaded fails in LoRAManager.validate_new_adapter; errors come back in the output."""
        tm = self.tokenizer_manager
        self.lora_updates.append(("load", lora_name, lora_path))
        if not tm.enable_lora:
            return LoRAUpdateOutput(False, "LoRA is not enabled. Please set `--enable-lora` to enable LoRA.")
        if lora_name in tm.lora_names:
            return LoRAUpdateOutput(False, f"Failed to load LoRA adapter {lora_name} because it is already loaded")
        tm.lora_names = tm.lora_names | {lora_name}
        return LoRAUpdateOutput(True, None, {name: name for name in tm.lora_names})

    async def async_unload_lora_adapter(self, lora_name: str) -> Any:
        """TokenizerManager.unload_lora_adapter: LoRARegistry.unregister fails for an unknown name."""
        tm = self.tokenizer_manager
        self.lora_updates.append(("unload", lora_name, None))
        if not tm.enable_lora:
            return LoRAUpdateOutput(False, "LoRA is not enabled. Please set `--enable-lora` to enable LoRA.")
        if lora_name not in tm.lora_names:
            return LoRAUpdateOutput(False, f"LoRA with name {lora_name} does not exist. Loaded LoRAs: "
                                           f"dict_keys({sorted(tm.lora_names)})")
        tm.lora_names = tm.lora_names - {lora_name}
        return LoRAUpdateOutput(True, None, {name: name for name in tm.lora_names})

    def shutdown(self) -> None:
        self.shutdown_calls += 1


class _SglangPolicy(asyncio.DefaultEventLoopPolicy):
    """Stands in for uvloop.EventLoopPolicy."""

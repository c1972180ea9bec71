"""One frozen settings object, from CLI flags over environment variables (INFER_*) over defaults."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from typing import Any, Sequence

from runtime.sampling_defaults import load_sampling_defaults
from runtime.adapters import LoraAdapter, parse_adapters, split_specs
from runtime.engines import engine_names
from runtime.model import DEFAULT_MODEL
from runtime.reasoning.formats import reasoning_format_names
from runtime.tools.budget import DEFAULT_GRAMMAR_BUDGET
from runtime.tools.registry import format_names

ENV_PREFIX = "INFER_"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    model: str = DEFAULT_MODEL
    served_model_name: str | None = None  # defaults to the model's directory name
    model_aliases: tuple[str, ...] = ()
    api_keys: tuple[str, ...] = ()
    engine: str = "auto"
    log_level: str = "info"
    context_length: int | None = None
    dtype: str = "auto"
    tool_format: str = "auto"
    reasoning_format: str = "auto"
    # Key of the HMAC that signs Anthropic thinking blocks (so one sent back is recognised as ours); None: a
    # random key per process (blocks from before a restart are then not trusted, and not rendered).
    thinking_signature_key: str | None = None
    max_request_bytes: int = 32 * 1024 * 1024
    cache_dir: str | None = None
    seed: int = 0
    threads: int | None = None
    prefix_cache_entries: int = 4
    kv_cache_mb: int = 1024
    cpu_backend: str = "auto"
    max_running_requests: int | None = None  # default: from the cores on the CPU engine, none on SGLang
    max_queued_requests: int | None = None  # default: 4 x max_running_requests
    max_queue_wait: float = 30.0
    shutdown_timeout: float = 30.0
    header_read_timeout: float = 30.0
    first_byte_grace: float = 1.0
    keep_alive_interval: float = 5.0
    # Server-held conversations (Responses' previous_response_id, Anthropic threads)
    responses_store: str | None = None  # a SQLite file (default: <cache dir>/conversations.sqlite3) or redis://...
    responses_store_max_age: float = 30 * 24 * 3600.0
    responses_store_max_bytes: int = 1 << 30
    grammar_budget: int = DEFAULT_GRAMMAR_BUDGET
    grammar_timeout: float = 60.0
    tool_call_first: bool = False
    first_tool: str | None = None
    # Sampling defaults for what requests leave unset: vLLM's flags (runtime/sampling_defaults.py)
    generation_config: str = "auto"
    override_generation_config: str | None = None
    # LoRA adapters, each served as a model id of its own: vLLM's --lora-modules, SGLang's --lora-paths (the same)
    lora_modules: tuple[str, ...] = ()
    lora_paths: tuple[str, ...] = ()
    enable_lora: bool = False  # vLLM's and SGLang's switch; adapters given turn LoRA on anyway
    allow_runtime_lora: bool = False  # load/unload routes (vLLM: VLLM_ALLOW_RUNTIME_LORA_UPDATING=true)
    max_lora_rank: int | None = None
    max_loras: int | None = None  # vLLM's --max-loras, SGLang's --max-loras-per-batch
    max_cpu_loras: int | None = None  # vLLM's --max-cpu-loras, SGLang's --max-loaded-loras
    # SGLang
    tp_size: int = 1
    dp_size: int = 1
    mem_fraction_static: float | None = None
    chunked_prefill_size: int | None = None
    quantization: str | None = None
    disable_radix_cache: bool = False
    # Any engine: name=value pairs the engine takes as they are (runtime/engines EngineConfig.extra)
    engine_args: tuple[str, ...] = ()

    def __repr__(self) -> str:  # keys never reach logs
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["api_keys"] = f"<{len(self.api_keys)} keys>"
        shown["thinking_signature_key"] = "<set>" if self.thinking_signature_key else None
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    @property
    def store_location(self) -> str:
        if self.responses_store:
            return self.responses_store
        from runtime.model import default_cache_dir

        base = self.cache_dir or str(default_cache_dir().parent)
        return os.path.join(base, "conversations.sqlite3")

    @property
    def lora_adapters(self) -> tuple[LoraAdapter, ...]:
        """Both flags' adapters (runtime/adapters.py), for EngineConfig's field of the same name."""
        return parse_adapters((*self.lora_modules, *self.lora_paths))

    @property
    def model_name(self) -> str:
        if self.served_model_name:
            return self.served_model_name
        return os.path.basename(os.path.normpath(self.model)) or self.model


_HELP = {
    "model": "local transformers model directory, a hub id, or the embedded default",
    "served_model_name": "the model id clients use (default: the model's name)",
    "model_aliases": "other names accepted for the model, comma-separated",
    "api_keys": "accepted API keys, comma-separated (none: no auth)",
    "engine": f"inference engine: {', '.join(engine_names())}, or module:Class",
    "tool_format": "tool-call format (auto: from the chat template)",
    "reasoning_format": "how the model's thinking is marked (auto: from the chat template; none: no splitting)",
    "thinking_signature_key": "key signing Anthropic thinking blocks (default: random per process)",
    "max_request_bytes": "largest request body accepted (413 above)",
    "threads": "CPU engine: torch threads (default: all cores)",
    "prefix_cache_entries": "CPU engine, transformers path: how many recent requests' KV caches to keep for "
                            "prefix reuse",
    "kv_cache_mb": "CPU engine: memory for the paged KV cache and its prefix tree, in MiB; requests that do not "
                   "fit wait, then get 429",
    "cpu_backend": "CPU engine: native (our batched model code; Llama, Mistral, Qwen2, Qwen3), transformers (one "
                   "sequence per forward pass, any architecture), or auto (native where it applies)",
    "max_running_requests": "generations running at once; more wait in a queue (default: 16 on the CPU engine, which "
                            "batches them; no limit on SGLang, whose scheduler queues)",
    "max_queued_requests": "requests waiting for a slot; beyond that, 429 at once (default: 4 x "
                           "--max-running-requests)",
    "max_queue_wait": "seconds a request may wait for a slot before a 429 with Retry-After",
    "shutdown_timeout": "seconds in-flight requests get to finish after SIGTERM; then streams end with an error",
    "header_read_timeout": "seconds a client gets to send a request's headers; slower connections are closed",
    "first_byte_grace": "seconds a stream waits for its first token before sending its headers (errors until then "
                        "are statuses; later ones go in-band)",
    "keep_alive_interval": "seconds of silence after which a stream sends a keep-alive (an SSE comment; Anthropic's "
                           "ping)",
    "engine_args": "engine-specific options as name=value, comma-separated (SGLang: any ServerArgs field, e.g. "
                   "schedule_policy=lpm)",
    "chunked_prefill_size": "tokens per forward pass, longer prompts split across passes (SGLang's option; on the "
                            "CPU engine its step budget, default 2048)",
    "disable_radix_cache": "no prefix sharing between requests (SGLang and the CPU engine)",
    "responses_store": "where stored responses and Anthropic threads are kept: a SQLite file path (default: "
                       "conversations.sqlite3 in the cache dir), ':memory:', or redis://host:port/db to share them "
                       "between replicas",
    "responses_store_max_age": "seconds a stored conversation turn is kept after its last use",
    "responses_store_max_bytes": "SQLite store: total size kept; the least recently used turns go beyond it",
    "generation_config": "where sampling defaults come from when a request sends none: auto (the model's "
                         "generation_config.json, as vLLM and SGLang read it), vllm (none: temperature 1), or a folder",
    "override_generation_config": "sampling defaults as JSON, over the model's (vLLM's flag), e.g. "
                                  "'{\"temperature\": 0}'; keys: temperature, top_p, top_k, min_p, repetition_penalty, "
                                  "max_new_tokens",
    "first_tool": "with --tool-call-first (implied): that first call must be of this tool where the request offers "
                  "it, e.g. exec_command for Codex CLI",
    "tool_call_first": "under tool_choice auto, a user's turn must begin with a tool call until a tool result is in "
                       "the conversation (for small models that never start calls by themselves; agents send auto)",
    "grammar_budget": "the most a request's schemas may cost to compile into a grammar, in estimated positions "
                      "(docs/API.md); costlier ones get a 400 at once",
    "grammar_timeout": "seconds a grammar may take to compile; then the request, and any repeat of its "
                       "schema, gets a 400",
    "lora_modules": "LoRA adapters served as model ids: name=path (a PEFT adapter directory) or vLLM's JSON "
                    "{\"name\": ..., \"path\": ...}, several separated by spaces or commas",
    "enable_lora": "accepted as vLLM and SGLang spell it (adapters named by --lora-modules turn LoRA on anyway)",
    "allow_runtime_lora": "serve vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter and SGLang's "
                          "/load_lora_adapter and /unload_lora_adapter (also on with vLLM's "
                          "VLLM_ALLOW_RUNTIME_LORA_UPDATING=true)",
    "max_lora_rank": "the largest LoRA rank allowed: an adapter above it is refused at start (SGLang: its "
                     "max_lora_rank, which sizes its adapter memory)",
    "max_loras": "SGLang: adapters in one batch (its max_loras_per_batch; alias --max-loras-per-batch); the CPU "
                 "engine mixes any number in a batch",
    "max_cpu_loras": "adapters whose weights are held (SGLang's max_loaded_loras; alias --max-loaded-loras): past it "
                     "the least recently used one not in use is evicted and loaded back when a request names it",
    "lora_paths": "SGLang's spelling of --lora-modules: name=path, a bare path, or {\"lora_name\": ..., "
                  "\"lora_path\": ...}",
    "dtype": "weights dtype (auto: the checkpoint's on SGLang, float32 on the CPU engine)",
}
_CHOICES = {"tool_format": format_names(), "reasoning_format": reasoning_format_names(),
            "cpu_backend": ("auto", "native", "transformers"),
            "log_level": ("critical", "error", "warning", "info", "debug")}
VLLM_RUNTIME_LORA = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"
_ALIASES = {"max_loras": ("--max-loras-per-batch",), "max_cpu_loras": ("--max-loaded-loras",)}  # SGLang's names
_SPECS = {"lora_modules", "lora_paths"}  # items that may hold JSON (commas inside): runtime/adapters.split_specs


def _convert(kind: str, raw: str) -> Any:
    if "tuple" in kind:
        return tuple(x.strip() for x in raw.split(",") if x.strip())
    if "bool" in kind:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if "int" in kind:
        return int(raw)
    if "float" in kind:
        return float(raw)
    return raw


def _checked(parser: argparse.ArgumentParser, name: str, kind: str, raw: str) -> Any:
    """A flag's (or its environment variable's) value as its type, or the usage error naming it."""
    try:
        return _convert(kind, raw)
    except ValueError:
        wanted = "an integer" if "int" in kind else "a number"
        parser.error(f"{name} must be {wanted}, not {raw!r}")


def load_settings(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    parser = argparse.ArgumentParser(prog="python -m app", description="Serve a chat model over the OpenAI "
                                     "and Anthropic APIs. Every flag also reads INFER_<NAME> from the environment.")
    values: dict[str, Any] = {}
    for f in fields(Settings):
        kind = str(f.type)
        flags = ("--" + f.name.replace("_", "-"), *_ALIASES.get(f.name, ()))
        if "bool" in kind:
            parser.add_argument(*flags, action="store_true", default=None, help=_HELP.get(f.name))
        elif f.name in _SPECS:  # vLLM's and SGLang's nargs="+": `--lora-modules a=/x b=/y`
            parser.add_argument(*flags, type=str, nargs="+", default=None, help=_HELP.get(f.name))
        else:
            parser.add_argument(*flags, type=str, default=None, choices=_CHOICES.get(f.name), help=_HELP.get(f.name))
        env_value = environ.get(ENV_PREFIX + f.name.upper())
        if env_value is not None:
            values[f.name] = (tuple(split_specs(env_value)) if f.name in _SPECS
                              else _checked(parser, ENV_PREFIX + f.name.upper(), kind, env_value))
    args = parser.parse_args(argv)
    for f in fields(Settings):
        raw = getattr(args, f.name)
        if f.name in _SPECS and raw is not None:
            values[f.name] = tuple(item for part in raw for item in split_specs(part))
        elif raw is not None:
            values[f.name] = raw if isinstance(raw, bool) else _checked(parser, "--" + f.name.replace("_", "-"),
                                                                          str(f.type), raw)
    given_keys = args.api_keys is not None or ENV_PREFIX + "API_KEYS" in environ
    if given_keys and not values.get("api_keys"):  # `--api-keys ","` must not mean "no auth"
        parser.error("--api-keys (or INFER_API_KEYS) is set but holds no key; give at least one, or unset it "
                     "to serve without auth")
    if "allow_runtime_lora" not in values and environ.get(VLLM_RUNTIME_LORA, "").lower() in ("1", "true"):
        values["allow_runtime_lora"] = True  # vLLM's switch for the same routes, as its users set it
    for name in ("max_lora_rank", "max_loras", "max_cpu_loras"):  # (0 or less would refuse every adapter)
        if values.get(name) is not None and values[name] < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, not {values[name]}")
    settings = Settings(**values)
    try:  # a bad override stops the server here, not at engine start (the model's own file is read there)
        load_sampling_defaults("", "vllm", settings.override_generation_config)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        adapters = settings.lora_adapters
    except ValueError as exc:
        parser.error(str(exc))
    if settings.model_name in {a.name for a in adapters}:
        parser.error(f"LoRA adapter name {settings.model_name!r} is the served model's name; name it otherwise")
    return settings

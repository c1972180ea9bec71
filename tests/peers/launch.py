"""The one thing adapted in the peer suites: how they launch a server. Their servers become ours.

A peer suite names a hub model and passes its own server's flags. Here the model becomes a tiny random model
built offline (the Qwen3 reasoning family for Qwen3 names, else the tiny Qwen2.5-template model), served under the
peer's model name, and each flag becomes ours where we have one and is dropped where it only tunes their engine.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import ServerProcess, wait_ready
from bench.servers import start as start_process


@dataclass
class PeerSettings:
    """Filled in by tests/peers/conftest.py from the session's fixtures before any peer server starts."""

    tiny_model_dir: Path | None = None
    log_dir: Path | None = None
    # The context window the next server gets (at most; a peer asking less gets less). A random model never ends
    # its turn, so a request without max_tokens runs to the window's end: each suite's window is sized to its
    # largest max_tokens (tests/peers/conftest.py), which keeps those requests short.
    context_cap: int = 1024
    _family_dirs: dict[str, Path] = field(default_factory=dict)

    def model_dir_for(self, peer_model: str) -> Path:
        if self.tiny_model_dir is None:
            raise RuntimeError("tests/peers/conftest.py did not configure the peer launcher")
        if "qwen3" not in peer_model.lower():
            return self.tiny_model_dir
        if "qwen3" not in self._family_dirs:
            from tests.reasoning_models import build_family_model

            target = self.tiny_model_dir.parent / "peer-qwen3"
            self._family_dirs["qwen3"] = build_family_model(self.tiny_model_dir, target, "qwen3")
        return self._family_dirs["qwen3"]

    def logs(self) -> Path:
        if self.log_dir is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix="peer-logs-"))
        return self.log_dir


SETTINGS = PeerSettings()

# Peer flags that take a value, mapped to ours (None: dropped with its value, it tunes only their engine).
_VALUED = {
    "--max-model-len": "--context-length",
    "--context-length": "--context-length",
    "--max-running-requests": "--max-running-requests",
    "--lora-modules": "--lora-modules",
    "--max-num-seqs": "--max-running-requests",  # vLLM's cap on sequences running at once
    "--max-lora-rank": "--max-lora-rank", "--max-cpu-loras": "--max-cpu-loras", "--max-loras": "--max-loras",
    "--max-loras-per-batch": "--max-loras", "--dtype": None,
    "--gpu-memory-utilization": None, "--structured-outputs-config.backend": None, "--tool-call-parser": None,
    "--reasoning-parser": None, "--grammar-backend": None, "--chunked-prefill-size": None,
    "--attention-backend": None, "--mem-fraction-static": None,
}
# Peer switches mapped to ours (None: dropped).
_SWITCHES = {
    "--no-enable-prefix-caching": "--disable-radix-cache",
    "--disable-radix-cache": "--disable-radix-cache",
    "--enforce-eager": None, "--enable-prompt-tokens-details": None, "--disable-frontend-multiprocessing": None,
    "--enable-server-load-tracking": None, "--enable-auto-tool-choice": None, "--enable-lora": "--enable-lora",
    "--enable-custom-logit-processor": None, "--is-embedding": None, "--enable-metrics": None,
}


def our_flags(peer_args: list[str], context_cap: int) -> list[str]:
    """Their server flags as ours. A flag we do not know is an error, so a new peer flag is looked at."""
    flags, args, context = [], list(peer_args), context_cap
    while args:
        arg = args.pop(0)
        name, _, inline = arg.partition("=")
        if name in _VALUED:
            value = inline or args.pop(0)
            if _VALUED[name] == "--lora-modules" and not lora_supported():
                continue  # LoRA: pending; those tests are listed as expected failures
            if _VALUED[name] == "--context-length":
                context = min(int(value), context_cap)
            elif _VALUED[name]:
                flags += [_VALUED[name], value]
        elif arg in _SWITCHES:
            flags += [_SWITCHES[arg]] if _SWITCHES[arg] else []
        else:
            raise ValueError(f"peer server flag {arg!r} has no translation in tests/peers/launch.py")
    return [*flags, "--context-length", str(context)]


def lora_supported() -> bool:
    from app.settings import Settings

    return "lora_modules" in getattr(Settings, "__dataclass_fields__", {})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(peer_model: str, peer_args: list[str], *, port: int = 0, api_key: str | None = None,
           timeout: float = 180.0) -> ServerProcess:
    """Our server for `peer_model`, ready (/health 200). port 0: the OS picks one (read back once it listens)."""
    args = ["app", "--model", str(SETTINGS.model_dir_for(peer_model)), "--engine", "cpu",
            "--served-model-name", peer_model, *our_flags(peer_args, SETTINGS.context_cap)]
    if api_key:
        args += ["--api-keys", api_key]
    if port:
        server = _start_on(port, args)
    else:
        server = start_process("peer", args, log_dir=SETTINGS.logs())
    wait_ready(server, timeout)
    return server


def _start_on(port: int, module_args: list[str]) -> ServerProcess:
    """Like bench.servers.start, on a port chosen beforehand (SGLang's suites fix their URL at import)."""
    import os
    import sys

    from bench.servers import ROOT

    log_path = SETTINGS.logs() / f"peer-{port}.log"
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", *module_args, "--port", str(port)], stdout=log,
                                   stderr=subprocess.STDOUT, cwd=ROOT, env=environment)
    return ServerProcess("peer", process, port, log_path)


def cleanup_logs() -> None:
    if SETTINGS.log_dir and SETTINGS.log_dir.name.startswith("peer-logs-"):
        shutil.rmtree(SETTINGS.log_dir, ignore_errors=True)

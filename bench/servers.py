"""Server subprocesses the frontend benchmark starts on free ports, and always stops."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float | None:
        """CPU time the server process has used (all its threads), where /proc tells; None elsewhere."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(name: str, module_args: list[str], *, log_dir: Path, env: dict[str, str] | None = None) -> ServerProcess:
    """`python -m <module_args> --port P` on a free port, offline (no hub), its output in a log file."""
    port = free_port()
    log_path = log_dir / f"{name}-{port}.log"
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", *module_args, "--port", str(port)], stdout=log,
                                   stderr=subprocess.STDOUT, cwd=ROOT, env=environment)
    return ServerProcess(name, process, port, log_path)


@contextmanager
def serving(name: str, module_args: list[str], *, log_dir: Path, timeout: float = 180.0) -> Iterator[ServerProcess]:
    """A started server, ready once /health answers 200; stopped on exit."""
    server = start(name, module_args, log_dir=log_dir)
    try:
        wait_ready(server, timeout)
        yield server
    finally:
        server.stop()


def wait_ready(server: ServerProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n"
                               f"{server.log_path.read_text(errors='replace')}")
        try:
            if httpx.get(server.base_url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f} s:\n{server.log_path.read_text(errors='replace')}")

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


def listening_port(pid: int) -> int | None:
    """The TCP port process `pid` listens on, from /proc (Linux): its socket inodes matched against the kernel's
    table of listening sockets. None until it listens, or where /proc cannot tell."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[len("socket:["):-1] for fd in os.listdir(f"/proc/{pid}/fd")
                  if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")}
        for table in ("tcp", "tcp6"):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    return int(fields[1].rsplit(":", 1)[1], 16)
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen
    port: int  # 0 until the server listens (it binds a port the OS picks; see wait_ready)
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


# Where /proc can tell which port a process listens on, the server binds port 0 and the OS picks a free one:
# no window in which another process can take a port chosen for it, nor a stranger's /health answering for it.
PICK_PORT_AFTER_START = Path("/proc/self/net/tcp").exists()


def start(name: str, module_args: list[str], *, log_dir: Path, env: dict[str, str] | None = None) -> ServerProcess:
    """`python -m <module_args> --port P` on a free port, offline (no hub), its output in a log file."""
    port = 0 if PICK_PORT_AFTER_START else free_port()
    log_path = log_dir / f"{name}-{port or time.monotonic_ns()}.log"
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


def _check_alive(server: ServerProcess) -> None:
    if server.process.poll() is not None:
        raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n"
                           f"{server.log_path.read_text(errors='replace')}")


def wait_listening(server: ServerProcess, timeout: float) -> None:
    """Until the server listens, so that its port (picked by the OS) is known."""
    deadline = time.monotonic() + timeout
    while not server.port:
        _check_alive(server)
        server.port = listening_port(server.process.pid) or 0
        if not server.port and time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{server.name} not listening after {timeout:.0f} s:\n"
                               f"{server.log_path.read_text(errors='replace')}")
        time.sleep(0 if server.port else 0.1)


def wait_ready(server: ServerProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    wait_listening(server, timeout)
    while time.monotonic() < deadline:
        _check_alive(server)
        try:
            if httpx.get(server.base_url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f} s:\n{server.log_path.read_text(errors='replace')}")

"""Where the peer suites' own files come from: vLLM's source distribution on PyPI, pinned by version and hash.

The files are public Apache-2.0 code and are not committed here (tests/peers/README.md). vLLM publishes its
test tree in its sdist, so the suite takes its four OpenAI-server files from there: downloaded once into
.cache/peers/ (50 MB), checked against the pinned SHA-256, and extracted verbatim to the paths below, where the
peer conftest finds them. SGLang ships no sdist and its wheel carries no server tests, so its files are only run
where someone has copied them in by hand (README.md lists their origin).

`python -m tests.peers.sources` does the same by hand; INFER_PEER_SUITES=0 turns the download off (the vLLM peer
files are then not collected, and the run says so).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

PEERS = Path(__file__).resolve().parent
ROOT = PEERS.parent.parent
CACHE = ROOT / ".cache" / "peers"

VLLM_VERSION = "0.34.0"
VLLM_SDIST = f"vllm-{VLLM_VERSION}.tar.gz"
VLLM_SHA256 = "fcad848b246a9d8652b47e6425af92334dc02492f9802720f54e27b823cf0113"
_VLLM_PATH = f"92/21/6e0b077dc4a0b28f5a8ce8bb352a38d7196650d681fd4faa87f8dc622eff/{VLLM_SDIST}"
# Where pip itself downloads from, then the path this workplace's pypi.org serves the same file at (its JSON API
# names it); the hash decides, not the host.
VLLM_URLS = (f"https://files.pythonhosted.org/packages/{_VLLM_PATH}", f"https://pypi.org/packages/packages/{_VLLM_PATH}")

# here (under tests/peers/vllm/) -> in the sdist (under vllm-<version>/tests/entrypoints/)
VLLM_FILES = {
    "chat_completion/test_chat.py": "openai/chat_completion/test_chat.py",
    "chat_completion/test_completion_with_function_calling.py":
        "openai/chat_completion/test_completion_with_function_calling.py",
    "completion/test_completion.py": "openai/completion/test_completion.py",
    "basic/test_basic.py": "serve/instrumentator/test_basic.py",  # tests/entrypoints/openai/basic/ before 0.31
}


class PeerSourceError(RuntimeError):
    pass


def enabled() -> bool:
    return os.environ.get("INFER_PEER_SUITES", "1").strip().lower() not in ("0", "false", "no", "off")


# Written after the files: which sdist they came from. Files without it (an older pin, an extraction cut short)
# are extracted again.
STAMP = PEERS / "vllm" / ".extracted-from"


def missing_vllm_files() -> list[Path]:
    """The files to extract: all of them unless the stamp says they are this pin's."""
    stamped = STAMP.exists() and STAMP.read_text().strip() == f"{VLLM_SDIST} {VLLM_SHA256}"
    return [PEERS / "vllm" / here for here in VLLM_FILES if not stamped or not (PEERS / "vllm" / here).exists()]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_sdist() -> Path:
    """The pinned sdist in the cache, downloaded if absent; a wrong hash is an error, never used."""
    target = CACHE / VLLM_SDIST
    try:
        if target.exists() and _sha256(target) == VLLM_SHA256:
            return target
    except OSError as exc:  # (another user's cache, say)
        raise PeerSourceError(f"cannot read {target}: {exc}") from exc
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"Downloading {VLLM_SDIST} from PyPI for vLLM's OpenAI-server tests (50 MB, once)...", file=sys.stderr)
    failures = []
    for url in VLLM_URLS * 2:  # each host twice: one dropped connection does not fail the run
        try:
            _fetch(url, target)
            return target
        except (OSError, PeerSourceError) as exc:
            failures.append(f"{url}: {exc}")
    raise PeerSourceError("could not download it: " + "; ".join(failures))


def _fetch(url: str, target: Path) -> None:
    """`url` to `target`, whole and with the pinned hash, or nothing at all."""
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as partial:
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                while block := response.read(1 << 20):
                    partial.write(block)
        except BaseException:
            os.unlink(partial.name)
            raise
    got = _sha256(Path(partial.name))
    if got != VLLM_SHA256:
        os.unlink(partial.name)
        raise PeerSourceError(f"{VLLM_SDIST} has SHA-256 {got}, expected {VLLM_SHA256}")
    os.chmod(partial.name, 0o644)  # (a temporary file is 0600)
    os.replace(partial.name, target)


def ensure_vllm_files() -> None:
    """Put vLLM's suite files in place (verbatim from the pinned sdist) where any is missing."""
    if not missing_vllm_files():
        return
    sdist = _download_sdist()
    prefix = f"vllm-{VLLM_VERSION}/tests/entrypoints/"
    STAMP.unlink(missing_ok=True)
    try:
        with tarfile.open(sdist) as archive:
            for here, there in VLLM_FILES.items():
                member = archive.extractfile(prefix + there)
                if member is None:
                    raise PeerSourceError(f"{prefix + there} is not a file in {VLLM_SDIST}")
                destination = PEERS / "vllm" / here
                destination.parent.mkdir(parents=True, exist_ok=True)
                partial = destination.with_name(destination.name + ".partial")
                partial.write_bytes(member.read())
                os.replace(partial, destination)  # whole or not at all
    except (OSError, tarfile.TarError) as exc:
        raise PeerSourceError(f"cannot extract vLLM's files from {sdist}: {exc}") from exc
    STAMP.write_text(f"{VLLM_SDIST} {VLLM_SHA256}\n")


if __name__ == "__main__":
    ensure_vllm_files()
    print("\n".join(str(PEERS / "vllm" / here) for here in VLLM_FILES))

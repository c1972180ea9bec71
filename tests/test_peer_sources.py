"""tests/peers/sources.py: vLLM's suite files from a pinned, hash-checked sdist, extracted whole and stamped.

Run against a small stand-in sdist served from a file:// URL, with the module's paths pointed at a temporary
folder, so nothing here touches the network or the real peer folder.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from tests.peers import sources


def _sdist(path: Path, version: str, files: dict[str, str]) -> str:
    with tarfile.open(path, "w:gz") as archive:
        for there, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"vllm-{version}/tests/entrypoints/{there}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """sources.py aimed at a stand-in sdist of two files, its cache and peer folder under tmp_path."""
    files = {"openai/a/test_one.py": "one = 1\n", "serve/test_two.py": "two = 2\n"}
    served = tmp_path / "served" / "vllm-9.9.9.tar.gz"
    served.parent.mkdir()
    digest = _sdist(served, "9.9.9", files)
    peers = tmp_path / "peers"
    monkeypatch.setattr(sources, "PEERS", peers)
    monkeypatch.setattr(sources, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(sources, "STAMP", peers / "vllm" / ".extracted-from")
    monkeypatch.setattr(sources, "VLLM_VERSION", "9.9.9")
    monkeypatch.setattr(sources, "VLLM_SDIST", "vllm-9.9.9.tar.gz")
    monkeypatch.setattr(sources, "VLLM_SHA256", digest)
    monkeypatch.setattr(sources, "VLLM_URLS", ("file:///nonexistent/vllm.tar.gz", served.as_uri()))
    monkeypatch.setattr(sources, "VLLM_FILES", {"a/test_one.py": "openai/a/test_one.py",
                                                "b/test_two.py": "serve/test_two.py"})
    return {"peers": peers, "served": served, "digest": digest}


def test_files_are_extracted_verbatim_and_stamped_after_a_failed_host(pinned: dict) -> None:
    assert len(sources.missing_vllm_files()) == 2
    sources.ensure_vllm_files()  # the first URL fails, the second serves it
    vllm = pinned["peers"] / "vllm"
    assert (vllm / "a" / "test_one.py").read_text() == "one = 1\n"
    assert (vllm / "b" / "test_two.py").read_text() == "two = 2\n"
    assert sources.missing_vllm_files() == []
    assert not list(vllm.rglob("*.partial"))


def test_files_without_this_pin_s_stamp_are_extracted_again(pinned: dict) -> None:
    sources.ensure_vllm_files()
    one = pinned["peers"] / "vllm" / "a" / "test_one.py"
    one.write_text("cut sh")  # an extraction cut short, or an older pin's file
    sources.STAMP.write_text("vllm-0.1.0.tar.gz 00\n")
    assert len(sources.missing_vllm_files()) == 2
    sources.ensure_vllm_files()
    assert one.read_text() == "one = 1\n"


def test_an_sdist_with_another_hash_is_refused_and_not_kept(pinned: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "VLLM_SHA256", "0" * 64)
    with pytest.raises(sources.PeerSourceError, match="SHA-256"):
        sources.ensure_vllm_files()
    assert not list((sources.CACHE).glob("*.tar.gz"))
    assert not (pinned["peers"] / "vllm" / "a" / "test_one.py").exists()


def test_the_switch_turns_the_download_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFER_PEER_SUITES", "0")
    assert not sources.enabled()
    monkeypatch.setenv("INFER_PEER_SUITES", "1")
    assert sources.enabled()

"""The peer tests expected to fail here, each with its reason (applied as xfail(strict=True) by conftest.py,
so a test that starts passing is noticed and taken off this list)."""

from __future__ import annotations

EXPECTED: dict[str, str] = {}


def reason_for(nodeid: str) -> str | None:
    """`nodeid` relative to tests/peers/; an entry names a test (all its parameters) or one parametrization."""
    relative = nodeid.split("tests/peers/", 1)[-1]
    return EXPECTED.get(relative) or EXPECTED.get(relative.split("[", 1)[0])

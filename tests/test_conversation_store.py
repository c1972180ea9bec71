"""The conversation store (app/store): SQLite on disk and Redis (a real redis-server), same contract."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.store import ConversationStore, StoredTurn, StoreLimits, open_store
from tests.redis_server import redis_server


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(params=["sqlite", "redis"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        import redis

        redis.Redis.from_url(url).flushdb()
        return url
    return str(tmp_path / "sub" / "store.sqlite3")


def turn(turn_id: str, parent: str | None = None, body: bytes = b"x", kind: str = "response") -> StoredTurn:
    return StoredTurn(turn_id, kind, parent, time.time(), body)


def run(coro):
    return asyncio.run(coro)


async def _with_store(location: str, limits: StoreLimits, work) -> object:
    store: ConversationStore = open_store(location, limits)
    try:
        return await work(store)
    finally:
        await store.close()


def test_chain_branch_and_delete(location: str) -> None:
    async def work(store: ConversationStore) -> None:
        await store.put(turn("a", body=b"first"))
        await store.put(turn("b", "a", b"second"))
        await store.put(turn("c", "b", b"third"))
        await store.put(turn("b2", "a", b"branch"))
        assert [t.body for t in await store.history("c")] == [b"first", b"second", b"third"]
        assert [t.id for t in await store.history("b2")] == ["a", "b2"]
        got = await store.get("b")
        assert got is not None and got.parent == "a" and got.kind == "response" and got.body == b"second"
        assert await store.get("nope") is None and await store.history("nope") is None
        assert await store.delete("b") and not await store.delete("b")
        assert await store.history("c") is None  # an earlier turn is gone: no partial history
        assert [t.id for t in await store.history("b2")] == ["a", "b2"]
        await store.put(turn("b2", "a", b"replaced"))
        assert (await store.get("b2")).body == b"replaced"

    run(_with_store(location, StoreLimits(), work))


def test_a_turn_is_claimed_once(location: str) -> None:
    """A linear conversation's turn (an Anthropic thread's) is continued by one claimant; a failed one lets go."""
    async def work(store: ConversationStore) -> None:
        await store.put(turn("a", kind="message"))
        assert await store.claim("a", "b") is None
        assert await store.claim("a", "c") == "b" and await store.claim("a", "b") == "b"
        await store.release("a", "c")  # not the holder: nothing changes
        assert await store.claim("a", "c") == "b"
        await store.release("a", "b")
        assert await store.claim("a", "c") is None
        assert await store.claim("nope", "x") is None and await store.get("nope") is None  # not created
        await store.put(turn("c", "a", kind="message"))
        assert [t.id for t in await store.history("c")] == ["a", "c"]
        assert await store.claim("a", "d") == "c"

    run(_with_store(location, StoreLimits(), work))


def test_turns_expire_when_unused(location: str) -> None:
    async def work(store: ConversationStore) -> None:
        await store.put(turn("old"))
        await asyncio.sleep(2.2)
        await store.put(turn("new"))
        assert await store.get("old") is None and await store.history("old") is None
        assert await store.get("new") is not None

    run(_with_store(location, StoreLimits(max_age=2), work))


def test_sqlite_evicts_least_recently_used_beyond_max_bytes(tmp_path: Path) -> None:
    async def work(store: ConversationStore) -> None:
        await store.put(turn("a", body=b"x" * 400))
        await store.put(turn("b", body=b"x" * 400))
        await asyncio.sleep(0.01)
        assert await store.history("a") is not None  # a is now used more recently than b
        await store.put(turn("c", body=b"x" * 400))
        assert await store.get("b") is None
        assert await store.get("a") is not None and await store.get("c") is not None

    run(_with_store(str(tmp_path / "s.sqlite3"), StoreLimits(max_bytes=1000), work))


def test_sqlite_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite3")

    async def write(store: ConversationStore) -> None:
        await store.put(turn("a", body=b"kept"))
        await store.put(turn("b", "a"))

    async def read(store: ConversationStore) -> list[StoredTurn] | None:
        return await store.history("b")

    run(_with_store(path, StoreLimits(), write))
    history = run(_with_store(path, StoreLimits(), read))
    assert history is not None and history[0].body == b"kept"


def test_sqlite_reads_a_database_written_before_claims(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE turns (id TEXT PRIMARY KEY, kind TEXT NOT NULL, parent TEXT, created_at REAL NOT NULL, "
               "used_at REAL NOT NULL, size INTEGER NOT NULL, body BLOB NOT NULL)")
    db.execute("INSERT INTO turns VALUES ('a', 'message', NULL, ?, ?, 1, x'78')", (time.time(), time.time()))
    db.commit()
    db.close()

    async def work(store: ConversationStore) -> None:
        assert [t.id for t in await store.history("a")] == ["a"]
        assert await store.claim("a", "b") is None and await store.claim("a", "c") == "b"
        await store.put(turn("d"))

    run(_with_store(str(path), StoreLimits(), work))

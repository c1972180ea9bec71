"""The default conversation store: one SQLite file (WAL), read and written in worker threads.

Eviction runs as turns are written: turns unused for `max_age` go first, then the least recently used until the
bodies fit in `max_bytes`. Reading a history marks its whole chain as used, so an active conversation keeps its
early turns however old they are.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time

from app.store import MAX_CHAIN, StoredTurn, StoreLimits

_SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    parent TEXT,
    created_at REAL NOT NULL,
    used_at REAL NOT NULL,
    size INTEGER NOT NULL,
    body BLOB NOT NULL,
    continued_by TEXT  -- the turn that continues this one, where the conversation may not branch (`claim`)
);
CREATE INDEX IF NOT EXISTS turns_used_at ON turns (used_at);
"""

# The chain from a turn back to its root, nearest first (depth-bounded, so a cycle cannot loop forever).
_CHAIN = """
WITH RECURSIVE chain(id, kind, parent, created_at, body, depth) AS (
    SELECT id, kind, parent, created_at, body, 0 FROM turns WHERE id = ?
    UNION ALL
    SELECT t.id, t.kind, t.parent, t.created_at, t.body, chain.depth + 1
    FROM turns t JOIN chain ON t.id = chain.parent WHERE chain.depth < ?
)
SELECT id, kind, parent, created_at, body FROM chain ORDER BY depth
"""


class SqliteStore:
    def __init__(self, path: str, limits: StoreLimits) -> None:
        self.path = path
        self.limits = limits
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()  # one connection, used from worker threads one at a time
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(turns)")}
            if "continued_by" not in columns:  # a database written before threads could refuse a branch
                self._db.execute("ALTER TABLE turns ADD COLUMN continued_by TEXT")
            self._total = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM turns").fetchone()[0]

    async def put(self, turn: StoredTurn) -> None:
        await asyncio.to_thread(self._put, turn)

    def _put(self, turn: StoredTurn) -> None:
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                old = self._db.execute("SELECT size FROM turns WHERE id = ?", (turn.id,)).fetchone()
                self._db.execute("INSERT OR REPLACE INTO turns (id, kind, parent, created_at, used_at, size, body) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (turn.id, turn.kind, turn.parent, turn.created_at, now, len(turn.body), turn.body))
                self._total += len(turn.body) - (old[0] if old else 0)
                self._evict(now)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._total = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM turns").fetchone()[0]
                raise

    def _expire(self, now: float) -> None:
        expired = self._db.execute("DELETE FROM turns WHERE used_at < ? RETURNING size",
                                   (now - self.limits.max_age,)).fetchall()
        self._total -= sum(size for (size,) in expired)

    def _evict(self, now: float) -> None:
        self._expire(now)
        while self._total > self.limits.max_bytes:
            rows = self._db.execute("SELECT id, size FROM turns ORDER BY used_at LIMIT 64").fetchall()
            if not rows:
                break
            for turn_id, size in rows:
                if self._total <= self.limits.max_bytes:
                    break
                self._db.execute("DELETE FROM turns WHERE id = ?", (turn_id,))
                self._total -= size

    async def get(self, turn_id: str) -> StoredTurn | None:
        return await asyncio.to_thread(self._get, turn_id)

    def _get(self, turn_id: str) -> StoredTurn | None:
        with self._lock:
            row = self._db.execute("SELECT id, kind, parent, created_at, body FROM turns WHERE id = ? AND used_at >= ?",
                                   (turn_id, time.time() - self.limits.max_age)).fetchone()
        return StoredTurn(*row) if row else None

    async def history(self, turn_id: str) -> list[StoredTurn] | None:
        return await asyncio.to_thread(self._history, turn_id)

    def _history(self, turn_id: str) -> list[StoredTurn] | None:
        now = time.time()
        with self._lock:
            self._expire(now)
            rows = self._db.execute(_CHAIN, (turn_id, MAX_CHAIN)).fetchall()
            chain = [StoredTurn(*row) for row in reversed(rows)]
            if not chain or chain[0].parent is not None:  # unknown, or an earlier turn is gone
                return None
            ids = [t.id for t in chain]
            for start in range(0, len(ids), 500):  # SQLite's bound on parameters
                part = ids[start:start + 500]
                self._db.execute(f"UPDATE turns SET used_at = ? WHERE id IN ({','.join('?' * len(part))})",
                                 (now, *part))
        return chain

    async def delete(self, turn_id: str) -> bool:
        return await asyncio.to_thread(self._delete, turn_id)

    def _delete(self, turn_id: str) -> bool:
        with self._lock:
            row = self._db.execute("DELETE FROM turns WHERE id = ? RETURNING size", (turn_id,)).fetchone()
            if row:
                self._total -= row[0]
        return row is not None

    async def claim(self, turn_id: str, claimant: str) -> str | None:
        return await asyncio.to_thread(self._claim, turn_id, claimant)

    def _claim(self, turn_id: str, claimant: str) -> str | None:
        with self._lock:
            marked = self._db.execute("UPDATE turns SET continued_by = ? WHERE id = ? AND continued_by IS NULL",
                                      (claimant, turn_id)).rowcount
            if marked:
                return None
            row = self._db.execute("SELECT continued_by FROM turns WHERE id = ?", (turn_id,)).fetchone()
        return row[0] if row else None

    async def release(self, turn_id: str, claimant: str) -> None:
        await asyncio.to_thread(self._release, turn_id, claimant)

    def _release(self, turn_id: str, claimant: str) -> None:
        with self._lock:
            self._db.execute("UPDATE turns SET continued_by = NULL WHERE id = ? AND continued_by = ?",
                             (turn_id, claimant))

    async def close(self) -> None:
        with self._lock:
            self._db.close()

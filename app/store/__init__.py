"""Server-held conversation state, shared by the dialects that keep it: OpenAI's Responses API
(`store` / `previous_response_id`) and the Anthropic Messages API's threads (`thread: create / continue`).

A conversation is a chain of turns, each naming the turn it continues (`parent`): a turn holds only what that
request added (its new input and its output), so a long agent session costs storage linear in its length, and
two requests continuing the same turn branch without copying it. Reading a turn's history walks the chain to
its root; where any turn of it has been evicted the history is gone as a whole (`None`), never a silent prefix.
A dialect whose conversations are linear (Anthropic's threads) marks a turn as continued (`claim`), so a second
request continuing it can be refused; Responses branch freely, as OpenAI's do.

`body` is the dialect's own encoding of the turn (each dialect reads only its own `kind`); the store never
looks inside it. Two backends: SQLite on local disk (the default; one process, survives restarts) and Redis
(several replicas sharing one deployment's conversations). Both are bounded: a turn unused for `max_age`
seconds goes, and SQLite also evicts the least recently used turns beyond `max_bytes` (Redis bounds its memory
with its own `maxmemory` policy; docs/GPU.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

MAX_CHAIN = 10_000  # turns walked at most for one history: a longer chain (or a cycle) is treated as broken


@dataclass(frozen=True, slots=True)
class StoredTurn:
    id: str
    kind: str  # which dialect wrote it: "response" (OpenAI Responses) or "message" (Anthropic threads)
    parent: str | None  # the turn this one continues
    created_at: float  # unix seconds
    body: bytes


@dataclass(frozen=True, slots=True)
class StoreLimits:
    max_age: float = 30 * 24 * 3600.0  # seconds since last use (OpenAI keeps stored responses 30 days)
    max_bytes: int = 1 << 30  # SQLite: total size of the bodies kept


@runtime_checkable  # Litestar checks injected dependencies against their annotation
class ConversationStore(Protocol):
    async def put(self, turn: StoredTurn) -> None:
        """Keep `turn` (replacing one with the same id, as a cancelled response's final state does)."""
        ...

    async def get(self, turn_id: str) -> StoredTurn | None: ...

    async def history(self, turn_id: str) -> list[StoredTurn] | None:
        """The chain from its root to `turn_id`, oldest first, each turn marked as just used; None when
        `turn_id` or any turn before it is not held."""
        ...

    async def delete(self, turn_id: str) -> bool:
        """Forget the turn; later turns that continue it lose their history. False if it was not held."""
        ...

    async def claim(self, turn_id: str, claimant: str) -> str | None:
        """Mark the held turn `turn_id` as continued by the turn `claimant` (which may not be kept yet), unless
        another already continues it: None when this call made the mark (or the turn is not held), else the
        claimant already marked. For conversations that may not branch (Anthropic's threads); the mark goes
        with the turn (eviction, `delete`, a `put` of the same id)."""
        ...

    async def release(self, turn_id: str, claimant: str) -> None:
        """Undo `claim` where `claimant` still holds it (its request failed before its turn was kept)."""
        ...

    async def close(self) -> None: ...


def open_store(location: str, limits: StoreLimits) -> ConversationStore:
    """`redis://…` / `rediss://…` / `unix://…`: Redis (the `redis` package is imported only then); otherwise a
    SQLite database file path (`:memory:` for one that lasts as long as the process)."""
    if location.startswith(("redis://", "rediss://", "unix://")):
        from app.store.redis_store import RedisStore

        return RedisStore(location, limits)
    from app.store.sqlite_store import SqliteStore

    return SqliteStore(location, limits)

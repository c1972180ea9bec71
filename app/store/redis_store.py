"""The conversation store in Redis, for replicas that share one deployment's conversations.

Each turn is a hash `<prefix><id>` (kind, parent, created_at, body; `continued_by` once claimed) with a TTL
of `max_age`, renewed whenever a history that includes it is read: an active conversation stays, an abandoned
one expires. Memory is bounded by
Redis's own `maxmemory` policy (docs/GPU.md). A history is read in one round trip by a server-side script
that walks the chain.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from app.store import MAX_CHAIN, StoredTurn, StoreLimits

PREFIX = "infer:turn:"

# KEYS: none (the chain's keys are found as it is walked). ARGV: prefix, first id, ttl (s), max turns.
# Returns the turns nearest first, each as [id, kind, parent ("" for none), created_at, body].
_WALK = """
local out = {}
local id = ARGV[2]
local n = 0
while id and id ~= '' and n < tonumber(ARGV[4]) do
  local key = ARGV[1] .. id
  local f = redis.call('HMGET', key, 'kind', 'parent', 'created_at', 'body')
  if not f[1] then return {out, 0} end
  redis.call('EXPIRE', key, ARGV[3])
  table.insert(out, {id, f[1], f[2], f[3], f[4]})
  id = f[2]
  n = n + 1
end
if id and id ~= '' then return {out, 0} end
return {out, 1}
"""

# KEYS: the turn's key. ARGV: the claimant. The claimant already marked (nil when this call marked it, or the
# turn is not held: HSETNX alone would create the key).
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if redis.call('HSETNX', KEYS[1], 'continued_by', ARGV[1]) == 1 then return false end
return redis.call('HGET', KEYS[1], 'continued_by')
"""
_RELEASE = """
if redis.call('HGET', KEYS[1], 'continued_by') == ARGV[1] then redis.call('HDEL', KEYS[1], 'continued_by') end
return 0
"""


class RedisStore:
    def __init__(self, url: str, limits: StoreLimits) -> None:
        self.limits = limits
        self._redis = aioredis.from_url(url)
        self._walk = self._redis.register_script(_WALK)
        self._claim = self._redis.register_script(_CLAIM)
        self._release = self._redis.register_script(_RELEASE)

    @property
    def _ttl(self) -> int:
        return max(1, int(self.limits.max_age))

    async def put(self, turn: StoredTurn) -> None:
        key = PREFIX + turn.id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"kind": turn.kind, "parent": turn.parent or "",
                                    "created_at": repr(turn.created_at), "body": turn.body})
            pipe.expire(key, self._ttl)
            await pipe.execute()

    async def get(self, turn_id: str) -> StoredTurn | None:
        kind, parent, created_at, body = await self._redis.hmget(PREFIX + turn_id, "kind", "parent", "created_at",
                                                                 "body")
        if kind is None:
            return None
        return StoredTurn(turn_id, kind.decode(), parent.decode() or None, float(created_at), body)

    async def history(self, turn_id: str) -> list[StoredTurn] | None:
        rows, whole = await self._walk(args=[PREFIX, turn_id, self._ttl, MAX_CHAIN])
        if not whole or not rows:
            return None
        return [StoredTurn(i.decode(), kind.decode(), parent.decode() or None, float(created_at), body)
                for i, kind, parent, created_at, body in reversed(rows)]

    async def delete(self, turn_id: str) -> bool:
        return bool(await self._redis.delete(PREFIX + turn_id))

    async def claim(self, turn_id: str, claimant: str) -> str | None:
        holder = await self._claim(keys=[PREFIX + turn_id], args=[claimant])
        return holder.decode() if holder else None

    async def release(self, turn_id: str, claimant: str) -> None:
        await self._release(keys=[PREFIX + turn_id], args=[claimant])

    async def close(self) -> None:
        await self._redis.aclose()

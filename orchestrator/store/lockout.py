"""Wrong supervisor PINs counted in Redis, so every front door sees the same count and
the same lock."""

from __future__ import annotations

from redis.asyncio import Redis

from orchestrator.store import keys


class PinLockout:
    def __init__(self, redis: Redis, *, attempts: int, window_s: int, lockout_s: int) -> None:
        self._redis = redis
        self._attempts = attempts
        self._window_s = window_s
        self._lockout_s = lockout_s

    async def locked_for(self, supervisor_id: str) -> int:
        """Seconds the supervisor stays locked (0: not locked)."""
        ttl: int = await self._redis.ttl(keys.pin_lock(supervisor_id))
        return max(ttl, 0) if ttl != -1 else self._lockout_s

    async def wrong(self, supervisor_id: str) -> bool:
        """Count a wrong PIN; True when this one locks the supervisor."""
        failures = keys.pin_failures(supervisor_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(failures)
        pipe.expire(failures, self._window_s, nx=True)
        count, _ = await pipe.execute()
        if int(count) < self._attempts:
            return False
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(keys.pin_lock(supervisor_id), b"1", ex=self._lockout_s)
        pipe.delete(failures)
        await pipe.execute()
        return True

    async def right(self, supervisor_id: str) -> None:
        await self._redis.delete(keys.pin_failures(supervisor_id))

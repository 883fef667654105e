"""Receipts in Redis. All keys share the hash tag {receipts}, so that allocating a
number and binding it to its order is one atomic step: numbers are unique and gap-free
per receipt code, and an order never gets two."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from orchestrator.store import keys
from orchestrator.store.replication import KeyedPipeline, Replication, replication_for

_ALLOCATE = """
local held = redis.call('GET', KEYS[2])
if held then return {held, 0} end
local n = redis.call('INCR', KEYS[1])
local number = ARGV[1] .. ':' .. string.format('%010d', n)
redis.call('SET', KEYS[2], number)
return {number, 1}
"""


CHANGES = keys.RECEIPT_CHANGES  # the name the record drainer imports


class ReceiptStore:
    """With `replication` (by default one replica on a Redis Cluster, none on a single
    server: store/replication.py), a number allocated and a receipt written are
    confirmed by the replicas before they are used: a number lost in a failover would
    be given to a second order."""

    def __init__(self, redis: Redis, replication: Replication | None = None) -> None:
        self._redis = redis
        self._replication = replication or replication_for(redis)
        self._allocate = redis.register_script(_ALLOCATE)

    async def allocate(self, wanted: list[tuple[str, str]]) -> list[tuple[str, str, bool]]:
        """For each (receipt code, order id): the order's receipt number, the one it has
        or the next of the code's sequence, and whether it is new. One round trip (two
        the first time, when Redis does not know the script yet)."""
        if not wanted:
            return []
        for attempt in range(2):
            pipe = KeyedPipeline(self._redis, self._replication)
            for code, order_id in wanted:
                names = [keys.receipt_sequence(code), keys.receipt_of_order(order_id)]
                pipe.add(names[0], "EVALSHA", self._allocate.sha, 2, *names, code)
            results = await pipe.execute()
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in results):
                await self._redis.script_load(_ALLOCATE)
                continue
            break
        answers = []
        for result in results:
            if isinstance(result, Exception):
                raise result
            held, new = result
            code, _, number = held.decode().partition(":")
            answers.append((code, number, bool(new)))
        return answers

    async def save_all(self, records: list[tuple[str, str, bytes]]) -> None:
        """The receipts and their change entries in one transaction (one slot)."""
        if not records:
            return
        pipe = KeyedPipeline(self._redis, self._replication)
        pipe.add(CHANGES, "MULTI")
        for code, number, record in records:
            pipe.add(CHANGES, "SET", keys.receipt(code, number), record)
            pipe.add(CHANGES, "XADD", CHANGES, "*", "code", code, "no", number)
        pipe.add(CHANGES, "EXEC")
        for result in await pipe.execute():
            if isinstance(result, Exception):
                raise result

    async def save(self, code: str, number: str, record: bytes) -> None:
        await self.save_all([(code, number, record)])

    async def keep_for(self, receipts: list[tuple[str, str, str]], ttl_ms: int) -> None:
        """Let receipts (code, number, order id) already copied to the record leave Redis
        after `ttl_ms`."""
        if not receipts:
            return
        pipe = self._redis.pipeline(transaction=False)
        for code, number, order_id in receipts:
            pipe.pexpire(keys.receipt(code, number), ttl_ms)
            pipe.pexpire(keys.receipt_of_order(order_id), ttl_ms)
        await pipe.execute()

    async def number_of_order(self, order_id: str) -> tuple[str, str] | None:
        """The (receipt code, number) Redis binds to the order (its record may have left)."""
        held: bytes | None = await self._redis.get(keys.receipt_of_order(order_id))  # type: ignore[assignment]
        if held is None:
            return None
        code, _, number = held.decode().partition(":")
        return code, number

    async def of_order(self, order_id: str) -> bytes | None:
        bound = await self.number_of_order(order_id)
        return None if bound is None else await self.by_number(*bound)

    async def by_number(self, code: str, number: str) -> bytes | None:
        record: bytes | None = await self._redis.get(keys.receipt(code, number))  # type: ignore[assignment]
        return record

    async def by_numbers(self, wanted: list[tuple[str, str]]) -> list[bytes | None]:
        pipe = self._redis.pipeline(transaction=False)
        for code, number in wanted:
            pipe.get(keys.receipt(code, number))
        return list(await pipe.execute()) if wanted else []

    async def last_number(self, code: str) -> int:
        value = await self._redis.get(keys.receipt_sequence(code))
        return int(value or 0)

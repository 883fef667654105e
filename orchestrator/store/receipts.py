"""Receipts in Redis. All keys share the hash tag {receipts}, so that allocating a
number and binding it to its order is one atomic step: numbers are unique and gap-free
per receipt code, and an order never gets two."""

from __future__ import annotations

from redis.asyncio import Redis

from orchestrator.store import keys

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
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._allocate = redis.register_script(_ALLOCATE)

    async def allocate(self, wanted: list[tuple[str, str]]) -> list[tuple[str, str, bool]]:
        """For each (receipt code, order id): the order's receipt number, the one it has
        or the next of the code's sequence, and whether it is new. One round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for code, order_id in wanted:
            await self._allocate(
                keys=[keys.receipt_sequence(code), keys.receipt_of_order(order_id)],
                args=[code],
                client=pipe,
            )
        answers = []
        for held, new in await pipe.execute():
            code, _, number = held.decode().partition(":")
            answers.append((code, number, bool(new)))
        return answers

    async def save_all(self, records: list[tuple[str, str, bytes]]) -> None:
        if not records:
            return
        pipe = self._redis.pipeline(transaction=True)
        for code, number, record in records:
            pipe.set(keys.receipt(code, number), record)
            pipe.xadd(CHANGES, {"code": code, "no": number})
        await pipe.execute()

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

"""The Redis-backed store: batched reads before a decision, one group commit after.

A service-point actor talks to Redis in two round trips per batch of commands: one
pipelined read (ReadBatch: idempotency claims, stored responses, orders not in memory)
and one pipelined commit (WriteBatch: a fenced script per service point plus the global
claim releases). Front doors only read, through store/reads.py.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from orchestrator.domain import ids
from orchestrator.metrics import REDIS_DURATION, REDIS_ERRORS
from orchestrator.store import keys
from orchestrator.store.port import CommitRejected, LiveOrders, Read, RecordedOrder
from orchestrator.store.reads import order_snapshot
from orchestrator.store.write_batch import WriteBatch

__all__ = ["CommitRejected", "ReadBatch", "RedisStore", "WriteBatch"]

LATE_SUCCESS_TTL_S = 40 * 86_400


@contextmanager
def _measured(operation: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    except Exception:
        REDIS_ERRORS.labels(operation).inc()
        raise
    finally:
        REDIS_DURATION.labels(operation).observe(time.perf_counter() - started)


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ReadBatch:
    """Reads pipelined now, sent in one round trip by `run`."""

    def __init__(self, redis: Redis) -> None:
        self._pipe = redis.pipeline(transaction=False)
        self._reads: list[Read] = []

    def claim(self, key: str, value: str, ttl_ms: int | None) -> Read:
        """SET NX (with GET): None if claimed now, else the holder's value."""
        self._pipe.set(key, value, nx=True, px=ttl_ms, get=True)
        return self._next()

    def get(self, key: str) -> Read:
        self._pipe.get(key)
        return self._next()

    def order(self, order_id: str) -> Read:
        self._pipe.hget(keys.order(ids.service_point_of(order_id), order_id), "s")
        return self._next()

    async def run(self) -> None:
        if not self._reads:
            return
        with _measured("read"):
            results: list[Any] = await self._pipe.execute()
        for read, value in zip(self._reads, results, strict=True):
            read.value = value

    def _next(self) -> Read:
        read = Read()
        self._reads.append(read)
        return read


class RedisStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        commit = resources.files("orchestrator.store").joinpath("commit.lua").read_text()
        self._scripts = {"commit": commit, "release": _RELEASE}
        self._sha = {
            name: hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
            for name, text in self._scripts.items()
        }
        restore = resources.files("orchestrator.store").joinpath("restore.lua").read_text()
        self._restore = redis.register_script(restore)

    def read_batch(self) -> ReadBatch:
        return ReadBatch(self.redis)

    async def commit(self, batch: WriteBatch, epochs: Mapping[str, int]) -> None:
        """Write the whole batch in one round trip; raises if any part was refused.

        The scripts are called by their SHA; only when Redis says it does not know them
        (a restarted Redis) are they loaded and the batch sent again; no script of it ran,
        and its plain SETs are safe to repeat."""
        if not batch:
            return
        for attempt in range(2):
            pipe = self.redis.pipeline(transaction=False)
            for sp, sp_keys, ops in batch.scripts():
                names = [keys.epoch(sp), *sp_keys]
                pipe.evalsha(self._sha["commit"], len(names), *names, str(epochs[sp]), *ops)
            for key, value in batch.sets():
                pipe.set(key, value)
            for key, holder in batch.releases():
                pipe.evalsha(self._sha["release"], 1, key, holder)
            with _measured("commit"):
                results = await pipe.execute(raise_on_error=False)
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in results):
                for text in self._scripts.values():
                    await self.redis.script_load(text)
                continue
            break
        failures = [r for r in results if isinstance(r, Exception)]
        if failures:
            raise CommitRejected("; ".join(str(f) for f in failures))

    # ---- service-point take-over and recovery ---------------------------------------

    async def take_over(self, sp: str) -> int:
        """A new epoch for the service point: older incarnations can no longer commit."""
        return int(await self.redis.incr(keys.epoch(sp)))

    async def open_orders(self, sp: str) -> LiveOrders:
        order_ids: list[bytes] = await self.redis.hkeys(keys.open_orders(sp))  # type: ignore[assignment]
        live = LiveOrders([], [])
        if not order_ids:
            return live
        pipe = self.redis.pipeline(transaction=False)
        for order_id in order_ids:
            pipe.hget(keys.order(sp, order_id.decode()), "s")
        for order_id, snapshot in zip(order_ids, await pipe.execute(), strict=True):
            if snapshot is None:
                live.missing.append(order_id.decode())
            else:
                live.snapshots.append(snapshot)
        return live

    async def chain_heads(self, days: Sequence[tuple[str, str]]) -> list[bytes | None]:
        """The heads of the journal chains of these (service point, day)s."""
        pipe = self.redis.pipeline(transaction=False)
        for sp, day in days:
            pipe.get(keys.chain_head(sp, day))
        with _measured("read"):
            return list(await pipe.execute())

    async def ask_reload(self, sp: str, order_ids: list[str]) -> None:
        await self.redis.sadd(keys.missing_orders(sp), *order_ids)

    async def restore(
        self, order: RecordedOrder, *, open_at: str, retention_ms: int, only_if_open: bool
    ) -> bool:
        if order.receipt is not None:
            # Before the order: a refund of it must find its receipt, never allocate a
            # second one. Each key only if absent (the issuer may hold a newer record).
            code, number, record = order.receipt
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(keys.receipt_of_order(order.order_id), f"{code}:{number}", nx=True,
                     px=retention_ms)  # fmt: skip
            pipe.set(keys.receipt(code, number), record, nx=True, px=retention_ms)
            with _measured("restore"):
                await pipe.execute()
        sp = ids.service_point_of(order.order_id)
        names = [
            keys.order(sp, order.order_id),
            keys.journal(sp, order.order_id),
            keys.open_orders(sp),
            keys.missing_orders(sp),
        ]
        args = [order.order_id, order.version, order.snapshot, retention_ms, open_at,
                "1" if only_if_open else "0", *order.journal]  # fmt: skip
        with _measured("restore"):
            done = await self._restore(keys=names, args=args)
        return bool(done == 1)

    # ---- reads of one order (the front door's: store/reads.py) ----------------------

    async def order(self, order_id: str) -> bytes | None:
        return await order_snapshot(self.redis, order_id)

    async def journal(self, order_id: str) -> Sequence[bytes]:
        sp = ids.service_point_of(order_id)
        entries: list[bytes] = await self.redis.lrange(keys.journal(sp, order_id), 0, -1)  # type: ignore[assignment]
        return entries

    async def record_late_success(self, attempt_id: str, trade_no: str) -> None:
        """Reconciliation's finding: the provider kept this attempt (kept 40 days)."""
        await self.redis.set(keys.late_success(attempt_id), trade_no, ex=LATE_SUCCESS_TTL_S)

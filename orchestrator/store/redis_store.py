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
from orchestrator.store.replication import NONE, KeyedPipeline, Replication, replication_for
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
    """Reads pipelined now, sent in one round trip by `run`. Its claims are writes: when
    the store waits for replicas, a batch that claims waits for them too (WAIT on each
    node claimed on), so a claim is never lost behind an acknowledged answer."""

    def __init__(self, redis: Redis, replication: Replication = NONE) -> None:
        self._redis = redis
        self._replication = replication
        self._claims = 0
        self._commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self._reads: list[Read] = []

    def claim(self, key: str, value: str, ttl_ms: int | None) -> Read:
        """SET NX (with GET): None if claimed now, else the holder's value."""
        expiry = ("PX", ttl_ms) if ttl_ms else ()
        self._claims += 1
        return self._add(key, ("SET", key, value, "NX", *expiry, "GET"), {"get": True})

    def get(self, key: str) -> Read:
        return self._add(key, ("GET", key), {})

    def order(self, order_id: str) -> Read:
        key = keys.order(ids.service_point_of(order_id), order_id)
        return self._add(key, ("HGET", key, "s"), {})

    async def run(self) -> None:
        if not self._reads:
            return
        pipe = KeyedPipeline(self._redis, self._replication if self._claims else NONE)
        for key, args, options in self._commands:
            pipe.add(key, *args, **options)
        with _measured("read"):
            results = await pipe.execute()
        for result in results:
            if isinstance(result, Exception):
                raise result
        for read, value in zip(self._reads, results, strict=True):
            read.value = value

    def _add(self, key: str, args: tuple[Any, ...], options: dict[str, Any]) -> Read:
        self._commands.append((key, args, options))
        read = Read()
        self._reads.append(read)
        return read


class RedisStore:
    """With `replication` (by default: one replica on a Redis Cluster, none on a single
    server), every commit, claim and take-over is confirmed by that many replicas before
    it returns (store/replication.py)."""

    def __init__(self, redis: Redis, replication: Replication | None = None) -> None:
        self.redis = redis
        self.replication = replication or replication_for(redis)
        commit = resources.files("orchestrator.store").joinpath("commit.lua").read_text()
        self._scripts = {"commit": commit, "release": _RELEASE}
        self._sha = {
            name: hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
            for name, text in self._scripts.items()
        }
        restore = resources.files("orchestrator.store").joinpath("restore.lua").read_text()
        self._restore = redis.register_script(restore)

    def read_batch(self) -> ReadBatch:
        return ReadBatch(self.redis, self.replication)

    async def commit(self, batch: WriteBatch, epochs: Mapping[str, int]) -> None:
        """Write the whole batch in one round trip; raises if any part was refused.

        The scripts are called by their SHA; only when Redis says it does not know them
        (a restarted Redis) are they loaded and the batch sent again; no script of it ran,
        and its plain SETs are safe to repeat."""
        if not batch:
            return
        for attempt in range(2):
            pipe = KeyedPipeline(self.redis, self.replication)
            for sp, sp_keys, ops in batch.scripts():
                names = [keys.epoch(sp), *sp_keys]
                pipe.add(names[0], "EVALSHA", self._sha["commit"], len(names), *names,
                         str(epochs[sp]), *ops)  # fmt: skip
            for key, value in batch.sets():
                pipe.add(key, "SET", key, value)
            for key, holder in batch.releases():
                pipe.add(key, "EVALSHA", self._sha["release"], 1, key, holder)
            with _measured("commit"):
                results = await pipe.execute()
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
        """A new epoch for the service point: older incarnations can no longer commit.
        Confirmed by the replicas like a commit: everything the service point's slot
        held before, what this incarnation will read, is then on them too (a commit
        whose WAIT fell short is covered by this one)."""
        pipe = KeyedPipeline(self.redis, self.replication)
        pipe.add(keys.epoch(sp), "INCR", keys.epoch(sp))
        [epoch] = await pipe.execute()
        if isinstance(epoch, Exception):
            raise epoch
        return int(epoch)

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

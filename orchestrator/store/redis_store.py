"""The Redis-backed store: batched reads before a decision, one group commit after.

A service-point actor talks to Redis in two round trips per batch of commands: one
pipelined read (ReadBatch: idempotency claims, stored responses, orders not in memory)
and one pipelined commit (WriteBatch: a fenced script per service point plus the global
claim releases). Front doors only read.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from orchestrator.metrics import REDIS_DURATION, REDIS_ERRORS
from orchestrator.store import keys
from orchestrator.store.receipts import ReceiptStore


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
    """Reads queued now, sent in one round trip by `run`; each call returns a slot."""

    def __init__(self, redis: Redis) -> None:
        self._pipe = redis.pipeline(transaction=False)
        self._results: list[Any] = []
        self._count = 0

    def claim(self, key: str, value: str, ttl_ms: int | None) -> int:
        """SET NX (with GET): the slot holds None if claimed now, else the holder's value."""
        self._pipe.set(key, value, nx=True, px=ttl_ms, get=True)
        return self._next()

    def get(self, key: str) -> int:
        self._pipe.get(key)
        return self._next()

    def order(self, order_id: str) -> int:
        self._pipe.hget(keys.order(keys.service_point_of(order_id), order_id), "s")
        return self._next()

    async def run(self) -> None:
        if self._count:
            with _measured("read"):
                self._results = await self._pipe.execute()

    def __getitem__(self, slot: int) -> Any:
        return self._results[slot]

    def _next(self) -> int:
        self._count += 1
        return self._count - 1


@dataclass
class _ServicePointOps:
    keys: list[str] = field(default_factory=list)
    key_index: dict[str, int] = field(default_factory=dict)
    ops: list[str | bytes] = field(default_factory=list)
    snapshots: dict[str, int] = field(default_factory=dict)  # order key -> op position

    def key(self, key: str) -> str:
        index = self.key_index.get(key)
        if index is None:
            self.keys.append(key)
            index = self.key_index[key] = len(self.keys) + 1  # KEYS[1] is the epoch
        return str(index)


class WriteBatch:
    """Everything one group commit writes, merged per service point."""

    def __init__(self) -> None:
        self._sp: dict[str, _ServicePointOps] = {}
        self._releases: list[tuple[str, str]] = []
        self._sets: list[tuple[str, str]] = []
        self.order_ids: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self._sp or self._releases or self._sets)

    def save_order(
        self,
        sp: str,
        order_id: str,
        prev_version: int,
        version: int,
        snapshot: bytes,
        journal: Iterable[bytes],
        event: bytes,
    ) -> None:
        ops = self._ops(sp)
        self.order_ids.add(order_id)
        order_key = keys.order(sp, order_id)
        position = ops.snapshots.get(order_key)
        if position is None:  # first save of this order in the batch: check its version
            ops.snapshots[order_key] = len(ops.ops)
            ops.ops += ["S", ops.key(order_key), str(prev_version or ""), str(version), snapshot]
        else:  # a later save of the same order: keep the first check, write the latest
            ops.ops[position + 3] = str(version)
            ops.ops[position + 4] = snapshot
        journal_key = ops.key(keys.journal(sp, order_id))
        for entry in journal:
            ops.ops += ["J", journal_key, entry]
        ops.ops += ["C", ops.key(keys.changes(sp)), order_id, str(version)]
        ops.ops += ["P", keys.events(sp), event]

    def mark_open(self, sp: str, order_id: str, window_id: str) -> None:
        ops = self._ops(sp)
        ops.ops += ["H", ops.key(keys.open_orders(sp)), order_id, window_id]

    def mark_closed(self, sp: str, order_id: str) -> None:
        ops = self._ops(sp)
        ops.ops += ["D", ops.key(keys.open_orders(sp)), order_id]

    def note_day(self, sp: str, yyyymmdd: str, order_id: str) -> None:
        ops = self._ops(sp)
        ops.ops += ["A", ops.key(keys.day(sp, yyyymmdd)), order_id]

    def emit(self, sp: str, kind: str, at_ms: int, refund_id: str, snapshot: bytes) -> None:
        """A payment event in the service point's outbox, atomically with the change."""
        ops = self._ops(sp)
        ops.ops += ["X", ops.key(keys.outbox(sp)), kind, str(at_ms), refund_id, snapshot]

    def save_response(self, sp: str, request_id: str, value: bytes, ttl_ms: int) -> None:
        ops = self._ops(sp)
        ops.ops += ["R", ops.key(keys.response(sp, request_id)), value, str(ttl_ms)]

    def release(self, key: str, holder: str) -> None:
        """Delete a global claim, only if `holder` still holds it."""
        self._releases.append((key, holder))

    def set(self, key: str, value: str) -> None:
        self._sets.append((key, value))

    def _ops(self, sp: str) -> _ServicePointOps:
        ops = self._sp.get(sp)
        if ops is None:
            ops = self._sp[sp] = _ServicePointOps()
        return ops


class CommitRejected(Exception):
    """Redis refused a commit (fenced by a newer actor, or a version conflict)."""


class RedisStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        commit = resources.files("orchestrator.store").joinpath("commit.lua").read_text()
        self._scripts = {"commit": commit, "release": _RELEASE}
        self._sha = {
            name: hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
            for name, text in self._scripts.items()
        }

    def read_batch(self) -> ReadBatch:
        return ReadBatch(self.redis)

    async def commit(self, batch: WriteBatch, epochs: dict[str, int]) -> None:
        """Write the whole batch in one round trip; raises if any part was refused.

        The scripts are called by their SHA; only when Redis says it does not know them
        (a restarted Redis) are they loaded and the batch sent again; no script of it ran,
        and its plain SETs are safe to repeat."""
        if not batch:
            return
        for attempt in range(2):
            pipe = self.redis.pipeline(transaction=False)
            for sp, ops in batch._sp.items():
                names = [keys.epoch(sp), *ops.keys]
                pipe.evalsha(self._sha["commit"], len(names), *names, str(epochs[sp]), *ops.ops)
            for key, value in batch._sets:
                pipe.set(key, value)
            for key, holder in batch._releases:
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

    async def open_orders(self, sp: str) -> list[bytes]:
        order_ids: list[bytes] = await self.redis.hkeys(keys.open_orders(sp))  # type: ignore[assignment]
        if not order_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for order_id in order_ids:
            pipe.hget(keys.order(sp, order_id.decode()), "s")
        return [s for s in await pipe.execute() if s is not None]

    # ---- reads for the front door ------------------------------------------------------

    async def order(self, order_id: str) -> bytes | None:
        try:
            sp = keys.service_point_of(order_id)
        except ValueError:
            return None
        value: bytes | None = await self.redis.hget(keys.order(sp, order_id), "s")  # type: ignore[assignment]
        return value

    async def order_of_case(self, business_no: str) -> bytes | None:
        order_id: bytes | None = await self.redis.get(keys.business_case(business_no))  # type: ignore[assignment]
        return None if order_id is None else await self.order(order_id.decode())

    async def window_orders(self, sp: str, window_id: str) -> list[bytes]:
        """Snapshots of the window's orders that still need the actor."""
        open_orders: dict[bytes, bytes] = await self.redis.hgetall(keys.open_orders(sp))  # type: ignore[assignment]
        wanted = [o.decode() for o, w in open_orders.items() if w.decode() == window_id]
        if not wanted:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for order_id in wanted:
            pipe.hget(keys.order(sp, order_id), "s")
        return [s for s in await pipe.execute() if s is not None]

    async def orders_of_days(
        self, service_points: Sequence[str], days: Sequence[str]
    ) -> list[bytes]:
        """Snapshots of the orders that changed on any of the days (YYYYMMDD)."""
        pipe = self.redis.pipeline(transaction=False)
        for sp in service_points:
            for day in days:
                pipe.smembers(keys.day(sp, day))
        order_ids = sorted({o.decode() for members in await pipe.execute() for o in members})
        if not order_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for order_id in order_ids:
            pipe.hget(keys.order(keys.service_point_of(order_id), order_id), "s")
        return [s for s in await pipe.execute() if s is not None]

    def receipt_store(self) -> ReceiptStore:
        return ReceiptStore(self.redis)

    async def journal(self, order_id: str) -> Sequence[bytes]:
        sp = keys.service_point_of(order_id)
        entries: list[bytes] = await self.redis.lrange(keys.journal(sp, order_id), 0, -1)  # type: ignore[assignment]
        return entries

"""The drainer: copies every committed change from Redis to the record, then lets Redis
forget what the record holds.

It is one consumer group ("record") over the service points' change streams (one entry
per committed order version), their outbox streams (payment events, as the receipt
issuer reads them) and the receipts' change stream. A page of entries is read, the
orders' current snapshots and journals fetched, everything written to PostgreSQL in
one transaction, and only then acknowledged: a crash anywhere hands the page over
again, and the writes are idempotent. The record's tables are partitioned by business
day: at every housekeeping turn the drainer makes sure yesterday, today and the next
days have their partitions, and a page naming an older day makes its own. While
PostgreSQL is away the page is retried, nothing is acknowledged, and the lag grows;
payments never wait for it. Beside it, it puts back from the record any open order an
actor found missing from Redis (reload.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import date
from typing import Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from orchestrator.audit.closer import DailyCloser
from orchestrator.config import Config
from orchestrator.domain import ids
from orchestrator.domain.calendar import local_day
from orchestrator.domain.records import decode_entry, decode_order, is_open
from orchestrator.domain.states import OrderState
from orchestrator.record.metrics import (
    RECORD_BACKLOG,
    RECORD_DATABASE_UP,
    RECORD_DRAINED,
    RECORD_ERRORS,
    RECORD_EXPIRING,
    RECORD_LAG,
    RECORD_TRIMMED,
    REDIS_MAXMEMORY,
    REDIS_USED_MEMORY,
)
from orchestrator.record.metrics import start_at_zero as metrics_at_zero
from orchestrator.record.reload import Reloader
from orchestrator.record.streams import Entry, GroupReader, format_id, parse_id, unread_bounds
from orchestrator.record.writer import DrainedEvent, DrainedOrder, RecordWriter
from orchestrator.store import keys
from orchestrator.store.outbox import STORE_ERRORS
from orchestrator.store.receipts import CHANGES as RECEIPT_CHANGES
from orchestrator.store.receipts import ReceiptStore
from orchestrator.store.replication import KeyedPipeline

log = logging.getLogger(__name__)
GROUP = "record"
_MARK_CASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[1] .. ARGV[2], 'PX', ARGV[3])
end
return 0
"""
# The retention for an order's keys, only if Redis still holds the version the record now
# has: a newer one (a refund reopening the order, its commit clearing the expiry) must
# not inherit it before it is drained in its turn.
_RETAIN = """
if redis.call('HGET', KEYS[1], 'v') == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
end
return 0
"""
DAY_MS = 86_400_000
# After a page that was not full, wait this long before reading again, so that a steady
# trickle of payments is copied in pages rather than one transaction per change: the
# record lags by up to this much more, and costs a fraction of the CPU.
LINGER_S = 0.1


class Drainer:
    def __init__(
        self,
        redis: Redis,
        pool: AsyncConnectionPool[Any],
        config: Config,
        consumer: str = "drainer",
        closer: DailyCloser | None = None,
    ) -> None:
        points = [sp.id for sp in config.deployment.service_points]
        self._redis = redis
        self._pool = pool
        self._zone = config.settings.zone
        self._changes = [keys.changes(sp) for sp in points]
        self._outboxes = [keys.outbox(sp) for sp in points]
        streams = [*self._changes, *self._outboxes, RECEIPT_CHANGES]
        self._reader = GroupReader(redis, streams, GROUP, consumer)
        metrics_at_zero({_stream_kind(stream) for stream in streams})
        self._receipts = ReceiptStore(redis)
        self._writer = RecordWriter(self._zone)
        settings = config.record
        self.retention_ms = int(settings.retention_s * config.settings.time_scale * 1000)
        self._case_ms = int(settings.case_retention_s * config.settings.time_scale * 1000)
        self._mark_case = redis.register_script(_MARK_CASE)
        self._retain_order = redis.register_script(_RETAIN)
        self._reloader = Reloader(redis, pool, points, self.retention_ms)
        self._batch = settings.drain_batch
        self._housekeeping_s = settings.housekeeping_s
        self._closer = closer
        self._stopping = False
        self.drained_orders = 0
        self.lag_s = 0.0
        self.backlog = 0

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        """Drain until stopped, with housekeeping (lag, trimming) beside it."""
        housekeeping = asyncio.create_task(self._housekeeping())
        delay = 0.1
        try:
            while not self._stopping:
                try:
                    await self._reader.join()
                    while not self._stopping:
                        entries = await self._reader.read(self._batch, block_ms=200)
                        if entries:
                            await self.drain(entries)
                            if len(entries) < self._batch and not self._stopping:
                                await asyncio.sleep(LINGER_S)
                        delay = 0.1
                except STORE_ERRORS as error:
                    RECORD_ERRORS.labels("redis").inc()
                    log.warning("drainer lost Redis (%s); retrying", error)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            housekeeping.cancel()
            await asyncio.gather(housekeeping, return_exceptions=True)

    async def drain(self, entries: Sequence[Entry]) -> bool:
        """Write the entries' changes to the record, then acknowledge them. Retries while
        PostgreSQL refuses; False if stopped before it accepted (nothing acknowledged)."""
        orders, events, receipts = await self._collect(entries)
        delay = 0.1
        while True:
            try:
                async with self._pool.connection(timeout=5.0) as conn:
                    await self._writer.write(conn, orders, events, receipts)
                break
            except (psycopg.Error, PoolTimeout, OSError) as error:
                RECORD_ERRORS.labels("postgres").inc()
                RECORD_DATABASE_UP.set(0)
                log.warning("cannot write to PostgreSQL (%s); retrying", error)
                if self._stopping:
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        RECORD_DATABASE_UP.set(1)
        RECORD_DRAINED.labels("order").inc(len(orders))
        RECORD_DRAINED.labels("payment_event").inc(len(events))
        RECORD_DRAINED.labels("receipt").inc(len(receipts))
        self.drained_orders += len(orders)
        await self._reader.ack(entries)
        await self._retain(orders, receipts)
        return True

    async def _collect(
        self, entries: Sequence[Entry]
    ) -> tuple[list[DrainedOrder], list[DrainedEvent], list[dict[str, Any]]]:
        order_ids: dict[str, None] = {}
        events: list[DrainedEvent] = []
        numbers: dict[tuple[str, str], None] = {}
        for entry in entries:
            fields = entry.fields
            if not fields:
                continue  # trimmed while pending: nothing left to copy
            if entry.stream == RECEIPT_CHANGES:
                numbers[(fields[b"code"].decode(), fields[b"no"].decode())] = None
            elif b"o" in fields:
                order_ids[fields[b"o"].decode()] = None
            else:
                order = decode_order(fields[b"order"])
                sp = entry.stream.split("{", 1)[1].split("}", 1)[0]
                events.append(
                    DrainedEvent(
                        f"{sp}-{entry.entry_id}",
                        fields[b"kind"].decode(),
                        int(fields[b"at"]),
                        fields[b"refund"].decode(),
                        order["order_id"],
                        order["version"],
                    )
                )
        pipe = self._redis.pipeline(transaction=False)
        for order_id in order_ids:
            sp = ids.service_point_of(order_id)
            pipe.hget(keys.order(sp, order_id), "s")
            pipe.lrange(keys.journal(sp, order_id), 0, -1)
        answers = await pipe.execute() if order_ids else []
        orders = []
        for i, order_id in enumerate(order_ids):
            snapshot, journal = answers[2 * i], answers[2 * i + 1]
            if snapshot is None:
                log.warning("order %s left Redis before it was drained", order_id)
                continue
            orders.append(DrainedOrder(decode_order(snapshot), [decode_entry(e) for e in journal]))
        stored = await self._receipts.by_numbers(list(numbers))
        receipts = [orjson.loads(r) for r in stored if r is not None]
        return orders, events, receipts

    async def _retain(self, orders: Sequence[DrainedOrder], receipts: Sequence[Any]) -> None:
        """Give the keys of what the record now holds the retention: an order once it
        needs nothing more (kept, without expiry, while it is open) and Redis holds no
        newer version of it, its journal, the day indexes it appears in, its receipt."""
        ttl = self.retention_ms
        # Keyed, for a Redis Cluster (where redis-py refuses a Script in a pipeline);
        # not waited for: lost in a failover, the retention is given again, or the keys
        # outlive it until the next drain of the order.
        pipe = KeyedPipeline(self._redis)
        retained: list[int] = []  # positions of the orders' retention in the pipeline
        for drained in orders:
            snapshot = drained.snapshot
            order_id = snapshot["order_id"]
            sp = snapshot["service_point_id"]
            names = [keys.order(sp, order_id), keys.journal(sp, order_id)]
            if is_open(snapshot):
                for name in names:
                    pipe.add(name, "PERSIST", name)
                continue
            retained.append(len(pipe))
            pipe.add(names[0], "EVALSHA", self._retain_order.sha, 2, *names,
                     snapshot["version"], ttl)  # fmt: skip
            if snapshot["state"] not in (OrderState.CANCELLED, OrderState.EXPIRED):
                # The case stays taken once its order has gone (the core then refuses a
                # second order for it instead of creating one).
                case = keys.business_case(snapshot["business_no"])
                pipe.add(case, "EVALSHA", self._mark_case.sha, 1, case, order_id,
                         keys.RECORDED, max(self._case_ms, ttl))  # fmt: skip
            days = {local_day(e["at"], self._zone).strftime("%Y%m%d") for e in drained.journal}
            for day in days:
                # A day's index is wanted until the day is settled and reconciled.
                pipe.add(keys.day(sp, day), "PEXPIRE", keys.day(sp, day), ttl + 2 * DAY_MS)
        await self._receipts.keep_for(
            [(r["receipt_code"], r["receipt_no"], r["order_id"]) for r in receipts], ttl
        )
        answers = await pipe.execute()
        if any(isinstance(a, NoScriptError) for a in answers):  # a restarted Redis
            for script in (_RETAIN, _MARK_CASE):
                await self._redis.script_load(script)
            answers = await pipe.execute()  # every step is safe to repeat
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        RECORD_EXPIRING.inc(sum(1 for i in retained if answers[i] == 1))

    # ---- housekeeping ------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        last_trim = 0.0
        task = asyncio.current_task()
        # Also ends on a cancellation a library swallowed (Python 3.11's wait_for, under
        # the pool's wait for a connection): `run` waits for this task to end.
        while not self._stopping and not (task and task.cancelling()):
            try:
                await self.make_partitions_ahead()
            except (OSError, psycopg.Error, PoolTimeout) as error:
                log.warning("drainer cannot make the record's partitions (%s)", error)
            try:
                await self.measure()
                await self._reloader.run_once()
                if self._closer is not None:
                    await self._closer.run_once()
                if time.monotonic() - last_trim >= self._housekeeping_s:
                    last_trim = time.monotonic()
                    await self.trim()
            except (RedisError, OSError, psycopg.Error, PoolTimeout) as error:
                log.warning("drainer housekeeping failed (%s)", error)
            await asyncio.sleep(min(1.0, self._housekeeping_s))

    async def make_partitions_ahead(self) -> list[date]:
        """The partitions of yesterday, today and the days ahead (those it made)."""
        today = local_day(int(time.time() * 1000), self._zone).date()
        if self._writer.partitions.knows_ahead(today):
            return []
        async with self._pool.connection(timeout=5.0) as conn:
            made = await self._writer.partitions.ensure_ahead(conn, today)
        if made:
            log.info("record: partitions made for %s", ", ".join(map(str, made)))
        return made

    async def measure(self) -> None:
        """The lag: age of the oldest entry the record has not taken; Redis memory."""
        bounds = await unread_bounds(self._redis, self._reader.streams)
        now_ms = int(time.time() * 1000)
        oldest = [
            groups[GROUP]["oldest"][0]
            for groups in bounds.values()
            if GROUP in groups and groups[GROUP]["oldest"] is not None
        ]
        backlog = sum(g[GROUP]["behind"] for g in bounds.values() if GROUP in g)
        unjoined = [s for s in self._reader.streams if GROUP not in bounds.get(s, {})]
        if unjoined:  # not read by the drainer yet: all of it is behind
            pipe = self._redis.pipeline(transaction=False)
            for stream in unjoined:
                pipe.xlen(stream)
                pipe.xrange(stream, count=1)
            answers = await pipe.execute()
            for length, first in zip(answers[::2], answers[1::2], strict=True):
                backlog += int(length)
                if first:
                    oldest.append(parse_id(first[0][0])[0])
        self.lag_s = max(0.0, (now_ms - min(oldest)) / 1000) if oldest else 0.0
        self.backlog = backlog
        RECORD_LAG.set(self.lag_s)
        RECORD_BACKLOG.set(self.backlog)
        memory: dict[str, Any] = await self._redis.info("memory")
        REDIS_USED_MEMORY.set(memory.get("used_memory", 0))
        REDIS_MAXMEMORY.set(memory.get("maxmemory", 0))

    async def trim(self) -> int:
        """Trim each stream below what every one of its readers has acknowledged; the
        outbox streams also keep the retention (a business system may ask again)."""
        streams = [*self._changes, *self._outboxes, RECEIPT_CHANGES]
        bounds = await unread_bounds(self._redis, streams)
        now_ms = int(time.time() * 1000)
        trimmed = 0
        for stream, groups in bounds.items():
            if not groups:
                continue
            keep = self.retention_ms if stream in self._outboxes else 0
            limit = (now_ms - keep, 0)
            for group in groups.values():
                if group["oldest"] is not None:
                    limit = min(limit, group["oldest"])
                else:
                    ms, seq = parse_id(group["last"])
                    limit = min(limit, (ms, seq + 1))
            if limit <= (0, 0):
                continue
            count = int(await self._redis.xtrim(stream, minid=format_id(*limit)))
            if count:
                RECORD_TRIMMED.labels(_stream_kind(stream)).inc(count)
                trimmed += count
        return trimmed


def _stream_kind(stream: str) -> str:
    """What a trimmed stream counts as: changes, outbox (the key's last part)."""
    return stream.rsplit(":", 1)[1]

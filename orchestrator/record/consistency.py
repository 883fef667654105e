"""Does the record agree with Redis? For every order Redis holds: the record has it at
the same version with the same snapshot, its journal holds exactly the Redis journal,
and its lines, attempts and refunds are those of the snapshot. Used after load runs and
by the tests (once the drainer has caught up)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection
from redis.asyncio import Redis

from orchestrator.config import load_config
from orchestrator.domain.ids import service_point_of
from orchestrator.domain.records import OrderRecord, decode_entry, decode_order
from orchestrator.runfile import RunInfo
from orchestrator.store import keys
from orchestrator.store.connect import connect


@dataclass
class Comparison:
    orders_in_redis: int = 0
    orders_in_record: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences


async def redis_orders(redis: Redis, service_points: Sequence[str]) -> dict[str, OrderRecord]:
    found: dict[str, OrderRecord] = {}
    for sp in service_points:
        names = [name async for name in redis.scan_iter(match=keys.order(sp, "*"), count=1000)]
        pipe = redis.pipeline(transaction=False)
        for name in names:
            pipe.hget(name, "s")
        for snapshot in await pipe.execute() if names else []:
            if snapshot is not None:
                record = decode_order(snapshot)
                found[record["order_id"]] = record
    return found


async def compare(
    redis: Redis, conn: AsyncConnection[Any], service_points: Sequence[str]
) -> Comparison:
    live = await redis_orders(redis, service_points)
    result = Comparison(orders_in_redis=len(live))
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT count(*) FROM orders WHERE service_point_id = ANY(%s)", (list(service_points),)
        )
        row = await cur.fetchone()
        result.orders_in_record = int(row[0]) if row else 0
        ids = sorted(live)
        await cur.execute(
            "SELECT order_id, version, snapshot FROM orders WHERE order_id = ANY(%s)", (ids,)
        )
        recorded = {order_id: (version, snap) for order_id, version, snap in await cur.fetchall()}
        await cur.execute(
            "SELECT order_id, entry FROM journal WHERE order_id = ANY(%s) "
            "ORDER BY order_id, version",
            (ids,),
        )
        journals: dict[str, list[Any]] = {}
        for order_id, entry in await cur.fetchall():
            journals.setdefault(order_id, []).append(entry)
        children: dict[str, dict[str, set[str]]] = {}
        for table, column in (("attempts", "attempt_id"), ("refunds", "refund_id")):
            await cur.execute(
                f"SELECT order_id, {column} FROM {table} WHERE order_id = ANY(%s)", (ids,)
            )
            for order_id, child in await cur.fetchall():
                children.setdefault(order_id, {}).setdefault(table, set()).add(child)
        await cur.execute(
            "SELECT order_id, count(*) FROM order_lines WHERE order_id = ANY(%s) GROUP BY order_id",
            (ids,),
        )
        line_counts = dict(await cur.fetchall())
    pipe = redis.pipeline(transaction=False)
    for order_id in ids:
        pipe.lrange(keys.journal(service_point_of(order_id), order_id), 0, -1)
    redis_journals = await pipe.execute() if ids else []
    for order_id, journal in zip(ids, redis_journals, strict=True):
        snapshot = live[order_id]
        held = recorded.get(order_id)
        if held is None:
            result.differences.append(f"{order_id}: in Redis, not in the record")
            continue
        version, stored = held
        if version != snapshot["version"] or stored != snapshot:
            result.differences.append(
                f"{order_id}: record at version {version}, Redis at {snapshot['version']}"
            )
        expected = [decode_entry(e) for e in journal]
        if journals.get(order_id, []) != expected:
            result.differences.append(
                f"{order_id}: journal has {len(journals.get(order_id, []))} entries in the "
                f"record, {len(expected)} in Redis"
            )
        mine = children.get(order_id, {})
        if mine.get("attempts", set()) != {a["attempt_id"] for a in snapshot["attempts"]}:
            result.differences.append(f"{order_id}: attempts differ")
        if mine.get("refunds", set()) != {r["refund_id"] for r in snapshot["refunds"]}:
            result.differences.append(f"{order_id}: refunds differ")
        if line_counts.get(order_id, 0) != len(snapshot["lines"]):
            result.differences.append(f"{order_id}: lines differ")
    return result


async def _settled_comparison(
    redis_url: str, database_url: str, service_points: Sequence[str], settle_s: float
) -> Comparison:
    """Compare until equal or `settle_s` has passed (the drainer may be behind)."""
    redis = connect(redis_url)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle_s
    try:
        while True:
            async with await AsyncConnection.connect(database_url) as conn:
                result = await compare(redis, conn, service_points)
            if result.equal or loop.time() > deadline:
                return result
            await asyncio.sleep(1.0)
    finally:
        await redis.aclose()


def record_problems(data_dir: Path, settle_s: float = 60.0) -> list[str]:
    """For the load tests' consistency check: what the record of the deployment that
    `windowpay serve` left in data_dir gets wrong (nothing when it has no record)."""
    info = RunInfo.read(data_dir)
    if info is None or not info.database_url:
        return []
    config = load_config(Path(info.config) if info.config else None)
    points = [sp.id for sp in config.deployment.service_points]
    result = asyncio.run(_settled_comparison(info.redis_url, info.database_url, points, settle_s))
    return [f"record: {d}" for d in result.differences]

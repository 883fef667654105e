"""The record's figures: drain lag while the service-point core commits as fast as it
can, catch-up speed after an outage, the writer's speed into the day partitions, and
bytes per order in Redis and PostgreSQL, against the province's projected peak.

In process, on a private Redis and a private PostgreSQL (no Ray, no gRPC): the record
first gets the partitions of `--days-attached` past days (as a province keeps them
before archiving), then the core pays orders in cash at its own peak rate through
Redis, the drainer copies them; then the drainer catches up after an outage; then the
writer alone copies synthetic pages spread over three days, one of them old enough to
need its partitions made on the way. Run alone
(`python -m loadtest.record_bench --orders 3000`) or from loadtest/bench.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from loadtest.console_data import day_of_orders
from orchestrator.config import load_config
from orchestrator.domain.catalog import RequestedLine
from orchestrator.domain.commands import CreateOrder, Done, Pay
from orchestrator.domain.records import decode_order
from orchestrator.domain.states import Channel
from orchestrator.embedded_redis import EmbeddedRedis
from orchestrator.record import migrate
from orchestrator.record.drainer import Drainer
from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.record.partitions import Partitions, partition_name
from orchestrator.record.writer import DrainedEvent, DrainedOrder, RecordWriter
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.store.redis_store import RedisStore

LINES = (RequestedLine("PLT-AUTO", 1), RequestedLine("DOC-VLIC", 1))
TABLES = ("orders", "order_lines", "attempts", "refunds", "journal", "payment_events", "receipts")
# The province at its peak (issue 26): about 1,000,000 payments on a peak day of exam
# season, over about 8.5 opening hours, is 33 orders/s on average; the busiest hour is
# taken at 3 times that. The drainer must copy at least this many orders a second.
PEAK_ORDERS_PER_S = 100


async def _office(
    core: ServicePointCore, windows: list[tuple[str, str]], per_window: int, phase: str
) -> int:
    async def window(window_id: str, terminal: str) -> int:
        for i in range(per_window):
            n = f"{phase}{i}"
            [created] = await core.submit(
                [CreateOrder(f"c{window_id}{n}", f"B{window_id}-{n}", window_id, "张三", LINES)]
            )
            assert isinstance(created, Done)
            order_id = decode_order(created.order)["order_id"]
            [paid] = await core.submit(
                [Pay(f"p{window_id}{n}", terminal, window_id, order_id, Channel.CASH, "", 20000)]
            )
            assert isinstance(paid, Done)
        return per_window

    return sum(await asyncio.gather(*(window(w, t) for w, t in windows)))


async def _rows(pool: AsyncConnectionPool[Any]) -> int:
    counted = " + ".join(f"(SELECT count(*) FROM {t})" for t in TABLES)
    async with pool.connection() as conn:
        row = await (await conn.execute(f"SELECT {counted}")).fetchone()
    return int(row[0]) if row else 0


async def _write_days(
    pool: AsyncConnectionPool[Any], config: Any, orders: int, page: int
) -> dict[str, Any]:
    """The writer alone, pages of synthetic orders of three days (one of them 40 days
    old, its partitions made on the way), with their payment events and receipts."""
    zone = config.settings.zone
    today = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    spread = [today, today - timedelta(days=1), today - timedelta(days=40)]
    drained = [o for n, day in enumerate(spread) for o in day_of_orders(orders // 3, day, seed=n)]
    writer = RecordWriter(zone)
    before = await _rows(pool)
    started = time.perf_counter()
    async with pool.connection() as conn:
        for i in range(0, len(drained), page):
            chunk = drained[i : i + page]
            await writer.write(conn, chunk, _events(chunk), _receipts(chunk))
    took = time.perf_counter() - started
    rows = await _rows(pool) - before
    return {
        "writer_orders": len(drained),
        "writer_orders_per_s": round(len(drained) / took, 1),
        "writer_rows_per_s": round(rows / took, 1),
    }


def _events(orders: list[DrainedOrder]) -> list[DrainedEvent]:
    return [
        DrainedEvent(f"{o.snapshot['service_point_id']}-{o.snapshot['paid_at']}-{n}", "PAID",
                     o.snapshot["paid_at"], "", o.snapshot["order_id"], o.snapshot["version"])
        for n, o in enumerate(orders)
        if o.snapshot["paid_at"]
    ]  # fmt: skip


def _receipts(orders: list[DrainedOrder]) -> list[dict[str, Any]]:
    return [
        {"receipt_code": "BENCH", "receipt_no": o.snapshot["order_id"],
         "order_id": o.snapshot["order_id"], "status": "ISSUED",
         "total_fen": o.snapshot["amount_fen"], "refunded_fen": 0,
         "issued_at": o.snapshot["paid_at"]}
        for o in orders
        if o.snapshot["paid_at"]
    ]  # fmt: skip


async def measure(orders: int, root: Path, days_attached: int = 90) -> dict[str, Any]:
    redis_server = EmbeddedRedis(root / "redis")
    postgres = EmbeddedPostgres(root / "pg")
    try:
        redis_url = redis_server.start()
        database_url = await asyncio.to_thread(postgres.start)
        await asyncio.to_thread(migrate.upgrade, database_url)
        config = load_config()
        windows = [
            (w, t)
            for t, w in sorted(config.deployment.terminal_window.items())
            if w in config.deployment.window_service_point
        ]
        points = [sp.id for sp in config.deployment.service_points]
        redis = Redis.from_url(redis_url)
        core = ServicePointCore(points, config, RedisStore(redis), {})
        await core.start()
        per_window = max(1, orders // 2 // len(windows))
        base = int((await redis.info("memory"))["used_memory"])
        async with AsyncConnectionPool(database_url, min_size=1, max_size=2) as pool:
            # 0. The record as a province keeps it: `days_attached` days of partitions.
            today = datetime.now(config.settings.zone).date()
            empty = today - timedelta(days=400)  # a day with no orders, for its fixed size
            async with pool.connection() as conn:
                await Partitions().ensure(
                    conn, [today - timedelta(days=n) for n in range(days_attached)] + [empty]
                )
            # 1. Peak: the drainer runs while the core commits as fast as it can.
            drainer = Drainer(redis, pool, config)
            task = asyncio.create_task(drainer.run())
            lags: list[float] = []

            async def sample() -> None:
                while True:
                    await drainer.measure()
                    lags.append(drainer.lag_s)
                    await asyncio.sleep(0.25)

            sampler = asyncio.create_task(sample())
            started = time.perf_counter()
            paid = await _office(core, windows, per_window, "peak")
            peak_s = time.perf_counter() - started
            while drainer.backlog:
                await asyncio.sleep(0.1)
                await drainer.measure()
            sampler.cancel()
            drainer.stop()
            await task
            live = int((await redis.info("memory"))["used_memory"]) - base
            # 2. An outage: the office goes on without the drainer, then it catches up.
            more = await _office(core, windows, per_window, "outage")
            await drainer.measure()
            backlog = drainer.backlog
            catching = Drainer(redis, pool, config)
            started = time.perf_counter()
            task = asyncio.create_task(catching.run())
            await catching.measure()
            while catching.backlog:
                await asyncio.sleep(0.05)
                await catching.measure()
            catch_up_s = time.perf_counter() - started
            catching.stop()
            await task
            async with pool.connection() as conn:
                # the partitions of the days the orders were made in (not the empty ones
                # of the days before, whose fixed size is given apart)
                cur = await conn.execute("SELECT DISTINCT created_day FROM orders")
                used = [day for (day,) in await cur.fetchall()]
                sizes = await (
                    await conn.execute(
                        "SELECT sum(pg_total_relation_size(n::regclass)) "
                        "FILTER (WHERE n <> ALL(%s)), "
                        "sum(pg_total_relation_size(n::regclass)) FILTER (WHERE n = ANY(%s)) "
                        "FROM unnest(%s::text[]) n",
                        (
                            [partition_name(t, empty) for t in TABLES],
                            [partition_name(t, empty) for t in TABLES],
                            [partition_name(t, d) for t in TABLES for d in {*used, empty}],
                        ),
                    )
                ).fetchone()
                counted = " + ".join(f"(SELECT count(*) FROM {t})" for t in TABLES)
                rows = await (
                    await conn.execute(f"SELECT (SELECT count(*) FROM orders), {counted}")
                ).fetchone()
            # 3. The writer alone into the partitions of three days.
            writing = await _write_days(pool, config, orders, config.record.drain_batch)
        await core.stop()
        await redis.aclose()
        assert sizes is not None and rows is not None
        recorded, all_rows = int(rows[0]), int(rows[1])
        return {
            "days_attached": days_attached,
            "projected_peak_orders_per_s": PEAK_ORDERS_PER_S,
            "orders_at_peak": paid,
            "peak_orders_per_s": round(paid / peak_s, 1),
            "drain_lag_max_s": round(max(lags, default=0.0), 3),
            "drain_lag_median_s": round(statistics.median(lags) if lags else 0.0, 3),
            "outage_backlog_entries": backlog,
            "outage_orders": more,
            "catch_up_s": round(catch_up_s, 2),
            "catch_up_orders_per_s": round(more / catch_up_s, 1),
            "catch_up_rows_per_s": round(more * all_rows / recorded / catch_up_s, 1),
            "catch_up_times_peak": round(more / catch_up_s / PEAK_ORDERS_PER_S, 1),
            **writing,
            "redis_bytes_per_live_order": round(live / paid),
            "postgres_bytes_per_order": round(int(sizes[0]) / recorded),
            "postgres_bytes_per_empty_day": int(sizes[1]),
            "rows_per_order": round(all_rows / recorded, 2),
        }
    finally:
        postgres.stop()
        redis_server.stop()
        shutil.rmtree(root, ignore_errors=True)


def run(orders: int, days_attached: int = 90) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="windowpay-record-bench-"))
    root.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    return asyncio.run(measure(orders, root, days_attached))


def report(figures: dict[str, Any]) -> None:
    print(
        f"record: peak {figures['peak_orders_per_s']} orders/s, drain lag max "
        f"{figures['drain_lag_max_s']} s (median {figures['drain_lag_median_s']} s); catch-up "
        f"{figures['catch_up_orders_per_s']} orders/s ({figures['catch_up_rows_per_s']} rows/s); "
        f"Redis {figures['redis_bytes_per_live_order']} B per live order, PostgreSQL "
        f"{figures['postgres_bytes_per_order']} B per order",
        flush=True,
    )
    print(
        f"record: {figures['days_attached']} days of partitions attached; catch-up is "
        f"{figures['catch_up_times_peak']}x the province's projected peak of "
        f"{figures['projected_peak_orders_per_s']} orders/s; the writer alone "
        f"{figures['writer_orders_per_s']} orders/s ({figures['writer_rows_per_s']} rows/s) "
        f"over three days' partitions; an empty day's partitions take "
        f"{figures['postgres_bytes_per_empty_day']} B",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000, help="orders per phase (3000)")
    parser.add_argument(
        "--days-attached", type=int, default=90,
        help="past days with partitions in the record before measuring (90)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    figures = run(args.orders, args.days_attached)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

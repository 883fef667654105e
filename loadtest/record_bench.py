"""The record's figures: drain lag while the service-point core commits as fast as it
can, catch-up speed after an outage, and bytes per order in Redis and PostgreSQL.

In process, on a private Redis and a private PostgreSQL (no Ray, no gRPC): the core pays
orders in cash at its own peak rate through Redis, the drainer copies them. Run alone
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
from pathlib import Path
from typing import Any

import orjson
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from orchestrator.config import load_config
from orchestrator.domain.catalog import RequestedLine
from orchestrator.domain.commands import CreateOrder, Done, Pay
from orchestrator.domain.states import Channel
from orchestrator.embedded_redis import EmbeddedRedis
from orchestrator.record import migrate
from orchestrator.record.drainer import Drainer
from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.store.redis_store import RedisStore

LINES = (RequestedLine("PLT-AUTO", 1), RequestedLine("DOC-VLIC", 1))
TABLES = ("orders", "order_lines", "attempts", "refunds", "journal", "payment_events", "receipts")


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
            order_id = orjson.loads(created.order)["order_id"]
            [paid] = await core.submit(
                [Pay(f"p{window_id}{n}", terminal, window_id, order_id, Channel.CASH, "", 20000)]
            )
            assert isinstance(paid, Done)
        return per_window

    return sum(await asyncio.gather(*(window(w, t) for w, t in windows)))


async def measure(orders: int, root: Path) -> dict[str, Any]:
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
                sizes = await (
                    await conn.execute(
                        "SELECT sum(pg_total_relation_size(t::regclass)) FROM unnest(%s::text[]) t",
                        (list(TABLES),),
                    )
                ).fetchone()
                counted = " + ".join(f"(SELECT count(*) FROM {t})" for t in TABLES)
                rows = await (
                    await conn.execute(f"SELECT (SELECT count(*) FROM orders), {counted}")
                ).fetchone()
        await core.stop()
        await redis.aclose()
        assert sizes is not None and rows is not None
        recorded, all_rows = int(rows[0]), int(rows[1])
        return {
            "orders_at_peak": paid,
            "peak_orders_per_s": round(paid / peak_s, 1),
            "drain_lag_max_s": round(max(lags, default=0.0), 3),
            "drain_lag_median_s": round(statistics.median(lags) if lags else 0.0, 3),
            "outage_backlog_entries": backlog,
            "outage_orders": more,
            "catch_up_s": round(catch_up_s, 2),
            "catch_up_orders_per_s": round(more / catch_up_s, 1),
            "catch_up_rows_per_s": round(more * all_rows / recorded / catch_up_s, 1),
            "redis_bytes_per_live_order": round(live / paid),
            "postgres_bytes_per_order": round(int(sizes[0]) / recorded),
            "rows_per_order": round(all_rows / recorded, 2),
        }
    finally:
        postgres.stop()
        redis_server.stop()
        shutil.rmtree(root, ignore_errors=True)


def run(orders: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="windowpay-record-bench-"))
    root.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    return asyncio.run(measure(orders, root))


def report(figures: dict[str, Any]) -> None:
    print(
        f"record: peak {figures['peak_orders_per_s']} orders/s, drain lag max "
        f"{figures['drain_lag_max_s']} s (median {figures['drain_lag_median_s']} s); catch-up "
        f"{figures['catch_up_orders_per_s']} orders/s ({figures['catch_up_rows_per_s']} rows/s); "
        f"Redis {figures['redis_bytes_per_live_order']} B per live order, PostgreSQL "
        f"{figures['postgres_bytes_per_order']} B per order",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000, help="orders per phase (3000)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    figures = run(args.orders)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

"""How long the console's "today" page takes on the server with a busy day in the
record (10,000 orders by default, and as many on the same weekday a week before).

    .venv/bin/python -m loadtest.console_bench [--orders 10000] [--database-url URL]

Without --database-url a throwaway PostgreSQL cluster is started and removed."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from psycopg_pool import AsyncConnectionPool

from loadtest.console_data import day_of_orders, write
from orchestrator.console.accounts import Role
from orchestrator.console.queries import ConsoleQueries
from orchestrator.console.scope import StaffScope
from orchestrator.record import migrate
from orchestrator.record.embedded import EmbeddedPostgres

ZONE = ZoneInfo("Asia/Shanghai")


async def measure(database_url: str, orders: int, runs: int) -> dict[str, float]:
    midnight = datetime.now(ZONE).replace(hour=0, minute=0, second=0, microsecond=0)
    await write(database_url, day_of_orders(orders, midnight), ZONE)
    await write(database_url, day_of_orders(orders, midnight - timedelta(days=7), seed=8), ZONE)
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False) as pool:
        await pool.open()
        queries = ConsoleQueries(pool)
        figures: dict[str, float] = {}
        for name, scope in (
            ("director", StaffScope(Role.DIRECTOR)),
            ("head", StaffScope(Role.HEAD, "SP03")),
            ("clerk", StaffScope(Role.CLERK, "SP03", "SP03-W1")),
        ):
            times = []
            for _ in range(runs):
                began = time.perf_counter()
                today = await queries.today(
                    scope, midnight.date(), int(time.time() * 1000), 600, str(ZONE)
                )
                times.append((time.perf_counter() - began) * 1000)
            figures[f"{name}_median_ms"] = statistics.median(times)
            figures[f"{name}_max_ms"] = max(times)
            if name == "director":
                figures["payments_today"] = today.payments
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    root = None
    url = args.database_url
    server = None
    if url is None:
        root = Path(tempfile.mkdtemp(prefix="windowpay-bench-pg-"))
        root.chmod(0o755)
        server = EmbeddedPostgres(root)
        server.start()
        url = server.url()
    try:
        migrate.upgrade(url)
        figures = asyncio.run(measure(url, args.orders, args.runs))
    finally:
        if server is not None:
            server.stop()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
    for name, value in figures.items():
        print(f"{name}: {value:.1f}")
    limit_ok = figures["director_median_ms"] < 300
    print(f"today page (director, {args.orders} orders): under 300 ms: {limit_ok}")


if __name__ == "__main__":
    main()

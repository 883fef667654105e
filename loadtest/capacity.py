"""The capacity model's figures: what one payment costs each part of windowpay, measured
on a served deployment, and what a place with a given traffic then needs.

It serves the bench's deployment (20 service points, WeChat payments with an instantly
paying code, Redis with `appendfsync always`, the PostgreSQL record) and pays for
`--seconds` at `--in-flight` payments at once, then waits for the record to hold every
order. Around that run it reads the counters the servers keep themselves:

* Redis: `INFO commandstats` (commands per payment, by command), `INFO stats` (bytes in
  and out), `aof_current_size` (bytes appended), `used_memory`;
* PostgreSQL: `pg_stat_database` (commits, rows written), the WAL position
  (`pg_current_wal_lsn`) and the database's size;
* CPU seconds of every process of the deployment, by role, as `bench.py` counts them.

Counts per payment (commands, rows, bytes) do not depend on the machine's load; CPU per
payment does, and is given with the load average. The projection divides the given
traffic by these figures (docs/SCALING.md, "The capacity model").

    python -m loadtest.capacity --seconds 20 --json var/capacity.json
    python -m loadtest.capacity --per-day 1000000 --peak-per-s 100

Everything runs on loopback and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from redis.asyncio import Redis

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtest import deployments
from loadtest.bench import NOT_OWN, Channels, Payer, closed_loop, serve
from orchestrator.runfile import RunInfo

# Roles of bench.py's process tree that are windowpay's own work, Redis and PostgreSQL
# apart (the model sizes those on their own).
STORES = ("redis", "postgresql")
UTILISATION = 0.5  # the share of a core planned to be busy at the peak: room for the tail


async def redis_counters(redis: Redis) -> dict[str, Any]:
    stats = await redis.info("commandstats")
    other = await redis.info("stats")
    persistence = await redis.info("persistence")
    memory = await redis.info("memory")
    return {
        "commands": {
            name.removeprefix("cmdstat_"): int(values["calls"]) for name, values in stats.items()
        },
        "net_in": int(other["total_net_input_bytes"]),
        "net_out": int(other["total_net_output_bytes"]),
        "aof": int(persistence["aof_current_size"]),
        "used_memory": int(memory["used_memory"]),
    }


async def postgres_counters(url: str) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        row = await (
            await conn.execute(
                "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, "
                "pg_current_wal_lsn() - '0/0'::pg_lsn, pg_database_size(current_database()) "
                "FROM pg_stat_database WHERE datname = current_database()"
            )
        ).fetchone()
        paid = await (await conn.execute("SELECT count(*) FROM orders")).fetchone()
    assert row is not None and paid is not None
    return {
        "commits": int(row[0]),
        "rows_written": int(row[1]) + int(row[2]) + int(row[3]),
        "wal_bytes": int(row[4]),
        "database_bytes": int(row[5]),
        "orders": int(paid[0]),
    }


async def record_holds(url: str, orders: int, within: float = 180.0) -> float:
    """Seconds until the record holds `orders` orders."""
    started = time.monotonic()
    while True:
        held = (await postgres_counters(url))["orders"]
        if held >= orders:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise RuntimeError(f"the record holds {held} of {orders} orders after {within} s")
        await asyncio.sleep(0.5)


def per(count: float, payments: int, digits: int = 2) -> float:
    return round(count / payments, digits)


async def measure(seconds: float, in_flight: int, workdir: Path) -> dict[str, Any]:
    config = deployments.deployment(20, max(4, -(-in_flight // 20)), per_actor=10)
    server, address, ready_s = serve(config, workdir, "capacity")
    try:
        run = RunInfo.read(workdir / "capacity")
        assert run is not None and run.database_url
        redis = Redis.from_url(run.redis_url)
        try:
            async with Channels(workdir / "capacity", address) as channels:
                payer = Payer(channels, deployments.windows(config))
                warm = await closed_loop("warm-up", in_flight, 3.0, payer.pay)
                await record_holds(run.database_url, len(warm.latencies_ms))
                r0, p0 = await redis_counters(redis), await postgres_counters(run.database_url)
                cpu0 = server.cpu_s()
                load0 = os.getloadavg()[0]
                paid = await closed_loop("payments", in_flight, seconds, payer.pay)
                payments = len(paid.latencies_ms)
                if paid.errors or not payments:
                    raise RuntimeError(f"{paid.errors} payments failed: {paid.first_error}")
                lag_s = await record_holds(run.database_url, p0["orders"] + payments)
                r1, p1 = await redis_counters(redis), await postgres_counters(run.database_url)
                cpu1 = server.cpu_s()
                load1 = os.getloadavg()[0]
        finally:
            await redis.aclose()
    finally:
        server.stop()
    commands = {name: r1["commands"][name] - r0["commands"].get(name, 0) for name in r1["commands"]}
    commands = {name: n for name, n in commands.items() if n > 0 and name != "info"}
    cpu = {role: cpu1[role] - cpu0.get(role, 0.0) for role in cpu1}
    cpu_ms = {role: round(s * 1000 / payments, 3) for role, s in sorted(cpu.items())}
    return {
        "payments": payments,
        "payments_per_s": round(paid.rate, 1),
        "in_flight": in_flight,
        "ready_s": round(ready_s, 1),
        "record_caught_up_after_s": round(lag_s, 1),
        "load_average_1m": [round(load0, 1), round(load1, 1)],
        "redis": {
            "commands_per_payment": per(sum(commands.values()), payments),
            "by_command": {
                name: per(n, payments) for name, n in sorted(commands.items(), key=lambda c: -c[1])
            },
            "bytes_in_per_payment": per(r1["net_in"] - r0["net_in"], payments, 0),
            "bytes_out_per_payment": per(r1["net_out"] - r0["net_out"], payments, 0),
            "aof_bytes_per_payment": per(r1["aof"] - r0["aof"], payments, 0),
            "memory_bytes_per_payment_first_day": per(
                r1["used_memory"] - r0["used_memory"], payments, 0
            ),
        },
        "postgresql": {
            "commits_per_payment": per(p1["commits"] - p0["commits"], payments, 3),
            "rows_written_per_payment": per(p1["rows_written"] - p0["rows_written"], payments),
            "wal_bytes_per_payment": per(p1["wal_bytes"] - p0["wal_bytes"], payments, 0),
            "database_bytes_per_payment": per(
                p1["database_bytes"] - p0["database_bytes"], payments, 0
            ),
        },
        "cpu_ms_per_payment": cpu_ms,
        "windowpay_cpu_ms_per_payment": round(
            sum(ms for role, ms in cpu_ms.items() if role not in NOT_OWN and role not in STORES),
            3,
        ),
    }


def project(figures: dict[str, Any], per_day: float, peak_per_s: float) -> dict[str, Any]:
    """What `per_day` payments a day, `peak_per_s` at the busiest moment, need."""
    cpu = figures["cpu_ms_per_payment"]
    redis, pg = figures["redis"], figures["postgresql"]
    own_cores = peak_per_s * figures["windowpay_cpu_ms_per_payment"] / 1000 / UTILISATION
    redis_core = peak_per_s * cpu.get("redis", 0.0) / 1000
    return {
        "per_day": per_day,
        "peak_per_s": peak_per_s,
        "windowpay_cores_at_peak": round(own_cores, 1),
        "redis_commands_per_s_at_peak": round(peak_per_s * redis["commands_per_payment"]),
        "redis_core_share_at_peak": round(redis_core, 2),
        # one Redis runs commands on one core: planned busy at most UTILISATION of it
        "redis_shards_for_cpu": max(1, int(-(-redis_core // UTILISATION))),
        "redis_aof_mb_per_day": round(per_day * redis["aof_bytes_per_payment"] / 2**20),
        # what a day of orders holds in Redis while their idempotency window is open
        "redis_memory_gb_first_day": round(
            per_day * redis["memory_bytes_per_payment_first_day"] / 2**30, 1
        ),
        "postgresql_commits_per_s_at_peak": round(peak_per_s * pg["commits_per_payment"], 1),
        "postgresql_wal_gb_per_day": round(per_day * pg["wal_bytes_per_payment"] / 2**30, 2),
        "postgresql_gb_per_year": round(365 * per_day * pg["database_bytes_per_payment"] / 2**30),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Measure what one payment costs each part of windowpay, and project "
        "what a given traffic needs (docs/SCALING.md).",
    )
    parser.add_argument("--seconds", type=float, default=20, help="measured run (default 20)")
    parser.add_argument("--in-flight", type=int, default=16, help="payments at once (default 16)")
    parser.add_argument(
        "--per-day", type=float, default=1_000_000, help="payments a day to project (default: "
        "a province at the peak of exam season, 1,000,000)"
    )  # fmt: skip
    parser.add_argument(
        "--peak-per-s", type=float, default=100,
        help="payments a second at the busiest moment (default 100: three times the "
        "average of 1,000,000 over 8.5 opening hours)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="windowpay-capacity-") as tmp:
        os.chmod(tmp, 0o711)  # the embedded PostgreSQL's own user reaches its data dir
        print(f"paying for {args.seconds:.0f} s at {args.in_flight} in flight...", flush=True)
        figures = asyncio.run(measure(args.seconds, args.in_flight, Path(tmp)))
    figures["projection"] = project(figures, args.per_day, args.peak_per_s)
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()

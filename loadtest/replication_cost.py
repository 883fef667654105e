"""What "acknowledged means replicated" costs a commit: the service-point store's group
commit (RedisStore.commit: one order saved with its journal entry, open-set entry, day
index, change-stream entry, outbox event and stored response) timed with and without
WAIT for one replica, one commit at a time and with several service points committing
at once.

    python -m loadtest.replication_cost --redis-url redis+cluster://:PASSWORD@HOST:PORT

The figures are in docs/PERFORMANCE.md ("Replication before acknowledging")."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from orchestrator.store.connect import connect
from orchestrator.store.redis_store import RedisStore
from orchestrator.store.replication import NONE, Replication
from orchestrator.store.write_batch import WriteBatch

SNAPSHOT = os.urandom(1200).hex().encode()  # about an order's snapshot (2.4 KB)


def batch_for(sp: str, n: int) -> WriteBatch:
    order_id = f"{sp}-{n:08d}"
    batch = WriteBatch()
    batch.save_order(sp, order_id, 0, 1, SNAPSHOT, [SNAPSHOT[:400]], SNAPSHOT[:200])
    batch.mark_open(sp, order_id, f"{sp}W1")
    batch.note_day(sp, "20261208", order_id)
    batch.emit(sp, "ORDER_CREATED", 0, "", SNAPSHOT)
    batch.save_response(sp, f"R{sp}{n}", SNAPSHOT[:300], 60_000)
    return batch


async def commits(store: RedisStore, sp: str, count: int) -> list[float]:
    epoch = await store.take_over(sp)
    took = []
    for n in range(count):
        batch = batch_for(sp, n)
        started = time.perf_counter()
        await store.commit(batch, {sp: epoch})
        took.append(time.perf_counter() - started)
    return took


async def measure(
    url: str, replicas: int, count: int, points: int, round_no: int
) -> dict[str, float]:
    redis = connect(url)
    store = RedisStore(redis, Replication(replicas) if replicas else NONE)
    tag = f"B{os.getpid()}R{round_no}"
    try:
        await commits(store, f"{tag}WARM", 50)
        one = await commits(store, f"{tag}ONE", count)
        started = time.perf_counter()
        many = await asyncio.gather(*(commits(store, f"{tag}P{i}", count) for i in range(points)))
        elapsed = time.perf_counter() - started
    finally:
        await redis.aclose()
    spread = sorted(t for ts in many for t in ts)
    return {
        "p50_ms": statistics.median(one) * 1000,
        "p99_ms": sorted(one)[int(len(one) * 0.99)] * 1000,
        "concurrent_p50_ms": statistics.median(spread) * 1000,
        "concurrent_per_s": points * count / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--service-points", type=int, default=8)
    args = parser.parse_args()
    for round_no, replicas in enumerate((0, 1, 0, 1)):  # interleaved: the machine is shared
        figures = asyncio.run(
            measure(args.redis_url, replicas, args.commits, args.service_points, round_no)
        )
        shown = ", ".join(f"{k} {v:.2f}" for k, v in figures.items())
        print(f"WAIT {replicas}: {shown}", flush=True)


if __name__ == "__main__":
    main()

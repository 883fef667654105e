"""Fault 2: `kill -9` Redis under load and start it again from its append-only file
(`appendfsync always`). No change windowpay acknowledged is lost, and the attempts in
flight are resumed and resolved."""

from __future__ import annotations

import asyncio
import time

from tests.faults.conftest import Stack
from tests.faults.load import through_fault


async def test_redis_killed_and_restarted_from_its_append_only_file(deployment: Stack) -> None:
    stack = deployment
    figures: dict[str, float] = {}

    async def crash_redis() -> None:
        started = time.monotonic()
        stack.redis.crash()
        # Down long enough for commits, reads and the health probe to fail.
        while await asyncio.to_thread(stack.served.health) == "SERVING":
            assert time.monotonic() - started < 30, "health never noticed Redis was gone"
            await asyncio.sleep(0.2)
        figures["not_serving_after_s"] = round(time.monotonic() - started, 1)
        await asyncio.to_thread(stack.redis.start)
        figures["redis_back_after_s"] = round(time.monotonic() - started, 1)
        await stack.served.wait_serving()
        figures["healthy_after_s"] = round(time.monotonic() - started, 1)

    outcome = await through_fault(
        stack.data_dir, stack.terminals, stack.windows, stack.sandboxes, crash_redis
    )
    stack.record(
        "2-redis-killed",
        payments=len(outcome.payments),
        appendfsync=stack.redis.appendfsync,
        **figures,
        all_final_after_s=outcome.all_final_after_s,
        ledgers_agree_after_s=outcome.ledgers_agree_after_s,
        client_retries=outcome.retries,
        retried_codes=outcome.retried_codes,
        problems=len(outcome.found),
        double_charges=outcome.doubles,
    )
    assert outcome.found == []
    assert outcome.doubles == 0

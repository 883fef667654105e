"""Fault 1: `kill -9` every service-point actor while payments of every channel and every
sandbox behaviour are in flight. Ray restarts each actor, which recovers its orders from
Redis and resumes every attempt; nothing is lost, nobody is charged twice, and every
sandbox ledger agrees with windowpay."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from tests.faults.conftest import SERVICE_POINTS, Stack
from tests.faults.load import through_fault


async def test_every_actor_killed_mid_payment(deployment: Stack) -> None:
    stack = deployment
    served = stack.served
    figures: dict[str, float] = {}

    async def kill_every_actor() -> None:
        pids = served.actor_pids()
        assert len(pids) == SERVICE_POINTS
        started = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        # Healthy again: a new process for every actor, and health SERVING.
        while True:
            fresh = set(served.actor_pids()) - set(pids)
            if fresh and "first_respawn_after_s" not in figures:
                figures["first_respawn_after_s"] = round(time.monotonic() - started, 1)
            if len(fresh) == SERVICE_POINTS and "all_respawned_after_s" not in figures:
                figures["all_respawned_after_s"] = round(time.monotonic() - started, 1)
            if len(fresh) == SERVICE_POINTS and await asyncio.to_thread(served.health) == "SERVING":
                break
            assert time.monotonic() - started < 120, "the actors did not come back"
            await asyncio.sleep(0.2)
        figures["healthy_after_s"] = round(time.monotonic() - started, 1)

    outcome = await through_fault(
        stack.data_dir, stack.terminals, stack.windows, stack.sandboxes, kill_every_actor
    )
    stack.record(
        "1-actors-killed",
        payments=len(outcome.payments),
        actors_killed=SERVICE_POINTS,
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

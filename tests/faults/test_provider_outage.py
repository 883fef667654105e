"""Fault 5: every provider gateway is down for 20 s (connections refused and cut) while
payments are in flight, then slow (latency added by a loopback proxy). Attempts end as
their playbook says — the unclear ones queried, then reversed or failed — none is left
non-final, and every sandbox ledger agrees with windowpay."""

from __future__ import annotations

import asyncio
import collections
import time

from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.faults.conftest import Stack
from tests.faults.load import through_fault

DOWN_FOR_S = 20.0
LATENCY_S = 0.1  # per chunk each way; the scaled pay timeout is 0.5 s


async def test_gateways_down_then_slow(deployment: Stack) -> None:
    stack = deployment
    proxies = stack.proxies.values()
    figures: dict[str, float] = {}

    async def outage() -> None:
        started = time.monotonic()
        for proxy in proxies:
            proxy.take_down()
        await asyncio.sleep(DOWN_FOR_S)
        for proxy in proxies:
            proxy.bring_up(latency_s=LATENCY_S)
        figures["down_for_s"] = round(time.monotonic() - started, 1)

    async def stays_slow() -> None:
        await asyncio.sleep(0)

    try:
        outcome = await through_fault(
            stack.data_dir, stack.terminals, stack.windows, stack.sandboxes, outage
        )
        # A second wave of payments while the gateways are still slow.
        slow = await through_fault(
            stack.data_dir, stack.terminals, stack.windows, stack.sandboxes, stays_slow
        )
    finally:
        for proxy in proxies:
            proxy.bring_up()
    ends = collections.Counter(
        pb.AttemptState.Name(a.state) for o in outcome.final.values() for a in o.attempts
    )
    slow_ends = collections.Counter(
        pb.AttemptState.Name(a.state) for o in slow.final.values() for a in o.attempts
    )
    stack.record(
        "5-provider-outage",
        payments=len(outcome.payments),
        **figures,
        latency_after_s=LATENCY_S,
        all_final_after_s=outcome.all_final_after_s,
        ledgers_agree_after_s=outcome.ledgers_agree_after_s,
        attempts_by_end=dict(sorted(ends.items())),
        slow_wave_payments=len(slow.payments),
        slow_wave_all_final_after_s=slow.all_final_after_s,
        slow_wave_attempts_by_end=dict(sorted(slow_ends.items())),
        problems=len(outcome.found) + len(slow.found),
        double_charges=outcome.doubles + slow.doubles,
    )
    assert outcome.found == []
    assert slow.found == []
    assert outcome.doubles == slow.doubles == 0
    assert stack.served.health() == "SERVING"

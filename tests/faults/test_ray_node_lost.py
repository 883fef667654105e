"""Fault 3: Ray's own daemons die under load. The supervision contract
(docs/RELIABILITY.md): health answers NOT_SERVING, the process exits with status 75
within seconds, its supervisor (a loop in this test) starts it again, and the terminals'
retries with the same request ids then succeed with exactly-once effects."""

from __future__ import annotations

import asyncio
import time

from orchestrator.cli import RAY_LOST
from tests.faults.conftest import Stack
from tests.faults.load import (
    Clients,
    Tally,
    checked,
    create_orders,
    double_charges,
    pay_all,
    settle,
)


async def supervise(stack: Stack, restarts: list[tuple[int, float]], stop: asyncio.Event) -> None:
    """What systemd or a container runtime does: restart the process when it exits."""
    served = stack.served
    while not stop.is_set():
        assert served.process is not None
        if served.process.poll() is not None:
            restarts.append((served.process.returncode, time.monotonic()))
            served.stop()
            served.start()
        await asyncio.sleep(0.2)


async def test_lost_ray_node_exits_and_is_restarted_with_nothing_lost(
    deployment: Stack,
) -> None:
    stack = deployment
    clients = Clients(stack.data_dir)
    tally = Tally()
    try:
        payments = await create_orders(clients, stack.terminals, stack.windows, tally)
        paying = asyncio.ensure_future(pay_all(clients, payments, tally))
        await asyncio.sleep(1.0)  # payments in flight at every stage
        [raylet] = stack.served.daemons("raylet")
        old_pid = stack.served.process.pid if stack.served.process else 0
        restarts: list[tuple[int, float]] = []
        stop = asyncio.Event()
        supervisor = asyncio.ensure_future(supervise(stack, restarts, stop))
        fault = time.monotonic()
        raylet.kill()

        not_serving = None
        while not restarts and time.monotonic() - fault < 60:
            if not_serving is None and await asyncio.to_thread(stack.served.health) != "SERVING":
                not_serving = time.monotonic() - fault
            await asyncio.sleep(0.2)
        assert restarts, "the process did not exit after losing its Ray node"
        exit_code, exited = restarts[0]
        assert exit_code == RAY_LOST
        assert stack.served.process is not None and stack.served.process.pid != old_pid
        # The supervisor keeps restarting while Ray fails to start on a loaded machine.
        while await asyncio.to_thread(stack.served.health) != "SERVING":
            assert time.monotonic() - fault < 300, "not serving again"
            await asyncio.sleep(0.2)
        healthy = time.monotonic() - fault
        restart_cpu = stack.served.cpu_by_role()  # where the restart's CPU went
        stop.set()
        await supervisor

        await paying
        final = await settle(clients, [p.order.order_id for p in payments])
        all_final = time.monotonic() - fault
        final, found = await checked(clients, payments, stack.sandboxes, final)
        doubles = double_charges(final, stack.sandboxes)
        stack.record(
            "3-ray-node-lost",
            payments=len(payments),
            not_serving_after_s=round(not_serving, 1) if not_serving is not None else None,
            exited_after_s=round(exited - fault, 1),
            exit_status=exit_code,
            restarts=len(restarts),
            restart_profile=stack.served.startup_profile(),
            restart_cpu_s=restart_cpu,
            healthy_after_s=round(healthy, 1),
            all_final_after_s=round(all_final, 1),
            client_retries=tally.retries,
            retried_codes=dict(tally.by_code),
            problems=len(found),
            double_charges=doubles,
        )
        assert found == []
        assert doubles == 0
    finally:
        await clients.close()

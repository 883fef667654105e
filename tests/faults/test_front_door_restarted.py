"""Fault 4: `kill -9` the serving process (front door and Ray driver) under load; a
supervisor starts it again on the same port. Terminals keep sending the same requests
with the same request ids: each has its effect once. WatchWindow clients reconnect and
see the window's current state."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.faults.conftest import Stack
from tests.faults.load import RETRIED, Clients, retrying, through_fault
from tests.support import eventually

OPEN = {pb.AWAITING_PAYMENT, pb.PAYING}


@dataclass
class Watcher:
    """A POS terminal watching its window, reconnecting whenever the stream breaks."""

    terminal_id: str
    data_dir: Path
    latest: dict[str, pb.Order] = field(default_factory=dict)
    connections: int = 0
    breaks: collections.Counter[grpc.StatusCode] = field(default_factory=collections.Counter)

    async def run(self) -> None:
        clients = Clients(self.data_dir)  # the channel itself reconnects
        try:
            while True:
                try:
                    stream = clients.terminal.WatchWindow(
                        pb.WatchWindowRequest(terminal_id=self.terminal_id)
                    )
                    self.connections += 1
                    async for order in stream:
                        seen = self.latest.get(order.order_id)
                        if seen is None or order.version >= seen.version:
                            self.latest[order.order_id] = order
                except grpc.aio.AioRpcError as error:
                    self.breaks[error.code()] += 1
                await asyncio.sleep(0.3)
        finally:
            await clients.close()


async def test_front_door_killed_and_restarted(deployment: Stack) -> None:
    stack = deployment
    served = stack.served
    figures: dict[str, float] = {}
    cpu: dict[str, float] = {}
    watched = stack.windows[:4]
    watchers = [Watcher(stack.terminals[w], stack.data_dir) for w in watched]
    tasks = [asyncio.ensure_future(w.run()) for w in watchers]

    async def kill_front_door() -> None:
        started = time.monotonic()
        served.kill()
        await served.supervised_start()  # the supervisor's restart
        figures["healthy_after_s"] = round(time.monotonic() - started, 1)
        cpu.update(served.cpu_by_role())  # where the restart's CPU went

    try:
        await eventually(
            lambda: asyncio.sleep(0, [w.connections for w in watchers]), lambda c: all(c)
        )
        outcome = await through_fault(
            stack.data_dir, stack.terminals, stack.windows, stack.sandboxes, kill_front_door
        )
        # Every watcher reconnected, each stream broken only as a restart breaks it (never
        # UNKNOWN: a crashed handler), sees each open order of its window as it is now,
        # and sees a new order created after the restart.
        assert all(w.connections >= 2 for w in watchers)
        assert all(set(w.breaks) <= RETRIED for w in watchers), [w.breaks for w in watchers]
        clients = Clients(stack.data_dir)
        try:
            new_orders = []
            for window in watched:
                request = pb.CreateOrderRequest(
                    request_id=uuid.uuid4().hex,
                    business_no=f"F-{uuid.uuid4().hex[:12]}",
                    window_id=window,
                    payer_name="钱七",
                    lines=[pb.OrderLine(fee_code="PLT-TEMP", quantity=1)],
                )
                new_orders.append(
                    await retrying(
                        lambda r=request: clients.business.CreateOrder(r, timeout=15), within=60
                    )
                )
        finally:
            await clients.close()
        for watcher, window, new in zip(watchers, watched, new_orders, strict=True):
            expected = {
                o.order_id: o.version
                for o in (*outcome.final.values(), new)
                if o.window_id == window and o.state in OPEN
            }
            await eventually(
                lambda w=watcher, e=expected: asyncio.sleep(
                    0, {o: w.latest[o].version for o in e if o in w.latest}
                ),
                lambda seen, e=expected: seen == e,
                within=30,
            )
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    stack.record(
        "4-front-door-restarted",
        payments=len(outcome.payments),
        **figures,
        restart_profile=stack.served.startup_profile(),
        restart_cpu_s=cpu,
        all_final_after_s=outcome.all_final_after_s,
        ledgers_agree_after_s=outcome.ledgers_agree_after_s,
        client_retries=outcome.retries,
        retried_codes=outcome.retried_codes,
        watch_reconnects=sum(w.connections - 1 for w in watchers),
        problems=len(outcome.found),
        double_charges=outcome.doubles,
    )
    assert outcome.found == []
    assert outcome.doubles == 0

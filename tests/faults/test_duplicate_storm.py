"""Fault 7: every request sent ten times at once, each copy over its own connection.
Exactly one effect each: one order per business case, one attempt per Pay, one charge."""

from __future__ import annotations

import asyncio
import itertools
import uuid

from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.faults.conftest import Stack
from tests.faults.load import MIX, Clients, Payment, double_charges, problems, retrying, settle

COPIES = 10


async def test_every_request_ten_times_at_once(deployment: Stack) -> None:
    stack = deployment
    connections = [Clients(stack.data_dir) for _ in range(COPIES)]
    try:
        creates = [
            pb.CreateOrderRequest(
                request_id=uuid.uuid4().hex,
                business_no=f"F-{uuid.uuid4().hex[:12]}",
                window_id=window,
                payer_name="孙八",
                lines=[pb.OrderLine(fee_code="EXM-K1", quantity=1)],
            )
            for window in stack.windows
        ]
        answers = await asyncio.gather(
            *(
                retrying(lambda c=c, r=r: c.business.CreateOrder(r, timeout=30), within=60)
                for r in creates
                for c in connections
            )
        )
        orders = []
        for i, request in enumerate(creates):
            copies = answers[i * COPIES : (i + 1) * COPIES]
            assert len({a.order_id for a in copies}) == 1, request.business_no
            orders.append(copies[0])

        plans = itertools.cycle(MIX)
        payments = []
        for order in orders:
            channel, ending = next(plans)
            payments.append(Payment(order, stack.terminals[order.window_id], channel, ending))
        paid = await asyncio.gather(
            *(
                retrying(lambda c=c, p=p: c.terminal.Pay(p.request(), timeout=30), within=60)
                for p in payments
                for c in connections
            )
        )
        for i, payment in enumerate(payments):
            copies = paid[i * COPIES : (i + 1) * COPIES]
            assert {len(a.attempts) for a in copies} == {1}, payment.order.order_id
            assert len({a.attempts[0].attempt_id for a in copies}) == 1
            payment.answer = copies[0]

        final = await settle(connections[0], [o.order_id for o in orders])
        assert all(len(o.attempts) == 1 for o in final.values())
        found = problems(payments, final, stack.sandboxes)
        doubles = double_charges(final, stack.sandboxes)
        stack.record(
            "7-duplicate-storm",
            requests=len(creates) + len(payments),
            copies_each=COPIES,
            problems=len(found),
            double_charges=doubles,
        )
        assert found == []
        assert doubles == 0
    finally:
        for clients in connections:
            await clients.close()

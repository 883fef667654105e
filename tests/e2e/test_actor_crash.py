"""A service-point actor killed mid-payment: Ray restarts it, it recovers every open
attempt from Redis, queries the provider, and finishes the work (reversing if needed)."""

import asyncio
import os
import signal

from prometheus_client import REGISTRY

from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.e2e.conftest import Deployed
from tests.support import eventually

# Calls to a killed actor are held by Ray until it is back: a new worker process, its
# imports, its open orders loaded. On two cores shared with other test tiers that took
# 34 s once; the deadline is for a call that never comes back, not for how fast.
ACTOR_BACK_S = 120


def batches(path: str) -> float:
    return REGISTRY.get_sample_value("windowpay_actor_batches_total", {"path": path}) or 0.0


async def test_payments_in_flight_survive_a_killed_actor(deployed: Deployed) -> None:
    sp = "G3"
    windows = [w for w, s in deployed.config.deployment.window_service_point.items() if s == sp]
    confirming = await deployed.create(windows[0])
    abandoned = await deployed.create(windows[1])
    calls = [
        asyncio.ensure_future(
            deployed.terminal_of_order(confirming).Pay(
                deployed.pay_request(confirming, Channel.WECHAT, "1111"), timeout=ACTOR_BACK_S
            )
        ),
        asyncio.ensure_future(
            deployed.terminal_of_order(abandoned).Pay(
                deployed.pay_request(abandoned, Channel.ALIPAY, "2222"), timeout=ACTOR_BACK_S
            )
        ),
    ]
    for order in (confirming, abandoned):
        await eventually(
            lambda o=order: deployed.get(o.order_id),
            lambda o: bool(o.attempts) and o.attempts[0].state == pb.AWAITING_PAYER,
        )
    submitter = deployed.actors.submitters[sp]
    pid = await submitter.pid()
    # The front door reaches the actor over its direct channel by now.
    await eventually(lambda: deployed.create(windows[3]), lambda _: batches("direct") > 0)
    os.kill(pid, signal.SIGKILL)

    # A command sent while the actor is down goes through Ray, which runs it once the
    # actor is back (the direct channel broke with the actor).
    through_ray = batches("ray")
    during = await deployed.create(windows[2], deadline_s=ACTOR_BACK_S)
    assert during.state == pb.AWAITING_PAYMENT
    assert batches("ray") > through_ray
    assert await submitter.pid() != pid
    # ...and the direct channel to the restarted actor carries the commands again.
    direct = batches("direct")
    await eventually(lambda: deployed.create(windows[3]), lambda _: batches("direct") > direct)

    paid, reversed_ = await asyncio.gather(*calls)
    assert paid.state == pb.PAID and paid.attempts[0].state == pb.SUCCEEDED
    assert reversed_.state == pb.AWAITING_PAYMENT
    assert reversed_.attempts[0].state == pb.REVERSED
    ledger = deployed.trade(Channel.ALIPAY, reversed_.attempts[0].attempt_id)
    assert ledger.state.value == "CLOSED"
    assert (deployed.trade(Channel.WECHAT, paid.attempts[0].attempt_id)).state.value == "SUCCESS"

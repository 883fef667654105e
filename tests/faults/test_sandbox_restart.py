"""Issue 28: a restart of `windowpay serve` (which runs the sandbox providers itself, as
`make run` does) no longer makes the providers forget the day.

* A payment in flight when the service is killed (the sandboxes with it) ends as the
  provider recorded it: paid, not reversed; a QR code shown before the restart is still
  payable at its URL after it.
* A day with a restart in the middle reconciles with no difference."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.sandbox.common import PayerBehaviour
from orchestrator.sandbox.payer import scan
from tests.faults.load import PB_CHANNEL, PROVIDERS, Clients, retrying
from tests.faults.sandboxed import SandboxedService, sandboxed_service
from tests.support import code, eventually, small_config_data

TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
RESTART_S = 300.0  # a restart on a loaded machine: Ray, the actors, the sandboxes
LONG_S = 900.0  # every playbook's windows are longer than a restart here


@pytest.fixture(scope="module")
async def service(
    work_dir: Path, postgres_server: EmbeddedPostgres
) -> AsyncIterator[SandboxedService]:
    # Real time (scale 1): a 1111 payer confirms 30 s after the pay call, about when a
    # killed service is serving again. The windows that would end an attempt while
    # the service is down (waiting for the payer, a QR code's life) outlast any restart,
    # so that what ends each attempt is what the provider answers after the restart.
    playbook = {"confirm_window_s": LONG_S, "qr_expiry_s": LONG_S}
    data = small_config_data(
        prefix="R", time_scale=1.0, service_points=2, windows=6,
        channels={channel.value: dict(playbook) for channel in PROVIDERS},
    )  # fmt: skip
    for channel in PROVIDERS:
        data["channels"][channel.value]["reverse_give_up_after_s"] = LONG_S + 60
    data["sandbox"]["confirm_after_s"] = 30
    async with sandboxed_service(work_dir, postgres_server, "restart", data) as service:
        yield service


@pytest.fixture(scope="module")
async def clients(service: SandboxedService) -> AsyncIterator[Clients]:
    clients = Clients(service.data_dir)
    yield clients
    await clients.close()


async def new_order(clients: Clients, window: str) -> pb.Order:
    request = pb.CreateOrderRequest(
        request_id=uuid.uuid4().hex, business_no=f"R-{uuid.uuid4().hex[:12]}",
        window_id=window, payer_name="赵六",
        lines=[pb.OrderLine(fee_code="DOC-VLIC", quantity=1)],
    )  # fmt: skip
    return await retrying(lambda: clients.business.CreateOrder(request, timeout=15), within=60)


def pay_request(
    service: SandboxedService, order: pb.Order, channel: Channel, ending: str = "0000"
) -> pb.PayRequest:
    return pb.PayRequest(
        request_id=uuid.uuid4().hex, terminal_id=service.terminal(order.window_id),
        order_id=order.order_id, channel=PB_CHANNEL[channel], auth_code=code(channel, ending),
    )  # fmt: skip


def qr_request(service: SandboxedService, order: pb.Order, channel: Channel) -> pb.PayRequest:
    return pb.PayRequest(
        request_id=uuid.uuid4().hex, terminal_id=service.terminal(order.window_id),
        order_id=order.order_id, channel=PB_CHANNEL[channel], mode=pb.PAYER_SCANS_QR,
    )  # fmt: skip


async def get(clients: Clients, order_id: str) -> pb.Order:
    request = pb.GetOrderRequest(order_id=order_id)
    return await retrying(lambda: clients.terminal.GetOrder(request, timeout=10), within=60)


async def settled(clients: Clients, order_id: str) -> pb.Order:
    """The order once its last attempt is final (and no refund is pending)."""
    return await eventually(
        lambda: get(clients, order_id),
        lambda o: (
            o.attempts[-1].state in (pb.SUCCEEDED, pb.FAILED, pb.REVERSED)
            and all(r.state != pb.REFUND_PENDING for r in o.refunds)
        ),
        within=RESTART_S,
        every=0.5,
    )


async def test_a_payment_in_flight_across_a_restart_ends_as_the_provider_recorded_it(
    service: SandboxedService, clients: Clients
) -> None:
    windows = service.windows
    shown: dict[Channel, tuple[pb.Order, str]] = {}
    for channel, window in zip(PROVIDERS, windows[3:], strict=False):
        order = await new_order(clients, window)
        answer = await clients.terminal.Pay(qr_request(service, order, channel), timeout=30)
        shown[channel] = (order, answer.attempts[0].qr_code_url)
    in_flight: dict[Channel, pb.Order] = {}
    pays: list[asyncio.Future[pb.Order]] = []
    for channel, window in zip(PROVIDERS, windows, strict=False):
        order = in_flight[channel] = await new_order(clients, window)
        request = pay_request(service, order, channel, "1111")  # the payer confirms in 30 s
        pays.append(asyncio.ensure_future(clients.terminal.Pay(request, timeout=60)))
    for channel, order in in_flight.items():  # each pay call reached its provider
        seen = await eventually(lambda o=order: get(clients, o.order_id), _attempted)
        trade = await eventually(
            lambda c=channel, a=seen.attempts[0]: service.trade(c, a.attempt_id),
            lambda t: t is not None,
        )
        assert trade is not None and trade["state"] == "USERPAYING", trade

    service.served.kill()  # the service, its actors and its sandboxes, at once
    for pay in pays:
        pay.cancel()
    await asyncio.gather(*pays, return_exceptions=True)
    await service.served.supervised_start()

    for channel, order in in_flight.items():
        ended = await settled(clients, order.order_id)
        [attempt] = ended.attempts
        assert (ended.state, attempt.state) == (pb.PAID, pb.SUCCEEDED), (channel, ended)
        trade = await service.trade(channel, attempt.attempt_id)
        assert trade is not None and trade["state"] == "SUCCESS", trade  # never reversed
        assert attempt.provider_trade_no == trade["trade_no"]
    for channel, (order, url) in shown.items():  # the code shown before, still payable
        await scan(url, PayerBehaviour.PAY)
        ended = await settled(clients, order.order_id)
        assert (ended.state, [a.state for a in ended.attempts]) == (pb.PAID, [pb.SUCCEEDED])
        trade = await service.trade(channel, ended.attempts[0].attempt_id)
        assert trade is not None and trade["state"] == "SUCCESS", trade


def _attempted(order: pb.Order) -> bool:
    return bool(order.attempts)


async def paid_and_refunded(service: SandboxedService, clients: Clients, window: str) -> None:
    """One payment per channel at `window`, each partly refunded, all settled."""
    supervisors = json.loads((service.data_dir / "pki" / "supervisors.json").read_text())
    for channel in PROVIDERS:
        order = await new_order(clients, window)
        request = pay_request(service, order, channel)
        terminal = clients.terminal_as(request.terminal_id)
        await retrying(lambda t=terminal, r=request: t.Pay(r, timeout=60), within=60)
        assert (await settled(clients, order.order_id)).state == pb.PAID
        supervisor = next(
            s for s, sp in service.config.access.supervisors.items()
            if sp == order.service_point_id
        )  # fmt: skip
        refund = pb.RefundRequest(
            request_id=uuid.uuid4().hex, terminal_id=request.terminal_id,
            order_id=order.order_id, amount_fen=100, reason="退一部分",
            supervisor_id=supervisor, supervisor_pin=supervisors[supervisor],
        )  # fmt: skip
        await retrying(lambda t=terminal, r=refund: t.Refund(r, timeout=60), within=60)
        refunded = await settled(clients, order.order_id)
        assert [r.state for r in refunded.refunds] == [pb.REFUND_SUCCEEDED], refunded


async def test_a_day_with_a_restart_in_the_middle_reconciles_clean(
    service: SandboxedService, clients: Clients, tmp_path: Path
) -> None:
    window = service.windows[-1]
    await paid_and_refunded(service, clients, window)
    service.served.stop()  # Ctrl-C, then `make run` again
    await service.served.supervised_start()
    await paid_and_refunded(service, clients, window)

    report = tmp_path / "day.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "reconcile", "--date", TODAY,
        "--data-dir", str(service.data_dir), "--json", str(report),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 300)
    assert report.exists(), err.decode()
    day = json.loads(report.read_text())
    assert (process.returncode, day["differences"]) == (0, []), out.decode()
    assert set(day["providers"]) == {c.value for c in PROVIDERS}
    assert all(day["providers"][c.value]["matched_count"] >= 4 for c in PROVIDERS), day

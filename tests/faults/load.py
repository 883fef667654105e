"""Payments in flight while a fault strikes, and the checks after it.

Terminals behave as the API asks: on UNAVAILABLE (or no answer in time) they send the
same request again with the same request_id, until a deadline. Any other error ends the
call, and fails the test: UNKNOWN above all, which is a handler that crashed, never a
fault the service may answer with. Afterwards every order is followed until its attempts
are final and compared with the sandbox ledgers."""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc

from orchestrator.channels.sandboxes import Sandboxes
from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from orchestrator.sandbox.bank import TradeState
from tests.faults.served import connect
from tests.support import code

T = TypeVar("T")

FINAL = {pb.SUCCEEDED, pb.FAILED, pb.REVERSED, pb.LATE_SUCCESS_REFUNDED}
PB_CHANNEL = {
    Channel.WECHAT: pb.WECHAT,
    Channel.ALIPAY: pb.ALIPAY,
    Channel.UNIONPAY: pb.UNIONPAY,
    Channel.CASH: pb.CASH,
}
BY_PB = {value: channel for channel, value in PB_CHANNEL.items()}
ENDINGS = ("0000", "1111", "2222", "3333", "4444", "5555", "6666", "7777", "8888", "9999")
PROVIDERS = (Channel.WECHAT, Channel.ALIPAY, Channel.UNIONPAY)
# Every channel with every sandbox behaviour, and some cash.
MIX = [(ch, e) for e in ENDINGS for ch in PROVIDERS] + [(Channel.CASH, "0000")] * 3
# What a terminal resends: the service is away (restarting, its Redis down), or did not
# answer in time, or ended the call as it shut down.
RETRIED = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)


class Clients:
    """Client connections to one front door, one per principal: the business system's,
    the back office's, and each terminal's. A terminal call presents the certificate of
    the terminal its request names; GetOrder reads as the back office."""

    def __init__(self, data_dir: Path, target: str | None = None) -> None:
        self._data_dir = data_dir
        self._target = target  # a front door other than the one run.json names
        self._channels: dict[str, grpc.aio.Channel] = {}
        self.business = pb_grpc.BusinessGatewayStub(self._channel("business"))
        self.backoffice = pb_grpc.BackOfficeStub(self._channel("backoffice"))
        self.terminal = _Terminals(self)

    def _channel(self, principal: str) -> grpc.aio.Channel:
        if principal not in self._channels:
            self._channels[principal] = connect(self._data_dir, principal, self._target)
        return self._channels[principal]

    def terminal_as(self, terminal_id: str) -> pb_grpc.TerminalStub:
        return pb_grpc.TerminalStub(self._channel(terminal_id))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()


class _Terminals:
    """The Terminal service, each call made as the principal it is for."""

    def __init__(self, clients: Clients) -> None:
        self._clients = clients

    def Pay(self, request: pb.PayRequest, **kwargs: Any) -> Any:
        return self._clients.terminal_as(request.terminal_id).Pay(request, **kwargs)

    def WatchWindow(self, request: pb.WatchWindowRequest, **kwargs: Any) -> Any:
        return self._clients.terminal_as(request.terminal_id).WatchWindow(request, **kwargs)

    def GetOrder(self, request: pb.GetOrderRequest, **kwargs: Any) -> Any:
        reader = pb_grpc.TerminalStub(self._clients._channel("backoffice"))
        return reader.GetOrder(request, **kwargs)


@dataclass
class Tally:
    retries: int = 0
    by_code: collections.Counter[str] = field(default_factory=collections.Counter)


async def retrying(
    call: Callable[[], Awaitable[T]], *, within: float, tally: Tally | None = None
) -> T:
    """`call` again (same request, same request_id) while the service is unavailable."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as error:
            if error.code() not in RETRIED or time.monotonic() > deadline:
                raise
            if tally is not None:
                tally.retries += 1
                tally.by_code[error.code().name] += 1
            await asyncio.sleep(0.3)


@dataclass
class Payment:
    order: pb.Order
    terminal_id: str
    channel: Channel
    ending: str
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    answer: pb.Order | None = None
    error: str = ""
    _request: pb.PayRequest | None = None

    def request(self) -> pb.PayRequest:
        """The same request every time it is sent (the auth code is drawn once)."""
        if self._request is None:
            self._request = self._build()
        return self._request

    def _build(self) -> pb.PayRequest:
        return pb.PayRequest(
            request_id=self.request_id,
            terminal_id=self.terminal_id,
            order_id=self.order.order_id,
            channel=PB_CHANNEL[self.channel],
            auth_code=code(self.channel, self.ending),
            cash_received_fen=self.order.amount_fen if self.channel is Channel.CASH else 0,
        )


async def create_orders(
    clients: Clients, terminals: dict[str, str], windows: Sequence[str], tally: Tally
) -> list[Payment]:
    """One order per window, with a payment planned over the channel-behaviour mix."""
    plans = itertools.cycle(MIX)

    async def one(window: str) -> pb.Order:
        request = pb.CreateOrderRequest(
            request_id=uuid.uuid4().hex,
            business_no=f"F-{uuid.uuid4().hex[:12]}",
            window_id=window,
            payer_name="赵六",
            lines=[pb.OrderLine(fee_code="DOC-DLIC", quantity=1)],
        )
        return await retrying(
            lambda: clients.business.CreateOrder(request, timeout=15), within=120, tally=tally
        )

    orders = await asyncio.gather(*(one(w) for w in windows))
    payments = []
    for order in orders:
        channel, ending = next(plans)
        payments.append(Payment(order, terminals[order.window_id], channel, ending))
    return payments


async def pay_all(
    clients: Clients, payments: Sequence[Payment], tally: Tally, within: float = 180
) -> None:
    async def one(payment: Payment) -> None:
        try:
            payment.answer = await retrying(
                lambda: clients.terminal.Pay(payment.request(), timeout=15),
                within=within,
                tally=tally,
            )
        except grpc.aio.AioRpcError as error:
            payment.error = f"{error.code().name}: {error.details()}"

    await asyncio.gather(*(one(p) for p in payments))


async def settle(
    clients: Clients, order_ids: Sequence[str], within: float = 240
) -> dict[str, pb.Order]:
    """Every order once all its attempts are final (fails after `within` s)."""
    deadline = time.monotonic() + within
    settled: dict[str, pb.Order] = {}
    pending = list(order_ids)
    while pending:
        replies = await asyncio.gather(
            *(
                retrying(
                    lambda o=o: clients.terminal.GetOrder(
                        pb.GetOrderRequest(order_id=o), timeout=15
                    ),
                    within=within,
                )
                for o in pending
            )
        )
        for order in replies:
            if order.attempts and all(a.state in FINAL for a in order.attempts):
                settled[order.order_id] = order
        pending = [o for o in pending if o not in settled]
        if pending and time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} orders not final within {within} s: {pending}")
        if pending:
            await asyncio.sleep(0.5)
    return settled


def kept_at_provider(sandboxes: Sandboxes, channel: Channel, attempt_id: str) -> int:
    trade = sandboxes.bank(channel).trade(attempt_id)
    if trade is None or trade.state not in (TradeState.SUCCESS, TradeState.REFUND):
        return 0
    return trade.amount_fen - trade.refunded_fen


def problems(
    payments: Sequence[Payment], final: dict[str, pb.Order], sandboxes: Sandboxes
) -> list[str]:
    """Lost payments, double charges, and every disagreement with the sandbox ledgers."""
    found = []
    for payment in payments:
        order_id = payment.order.order_id
        order = final.get(order_id)
        if order is None:
            found.append(f"{order_id}: lost")
            continue
        if payment.error:
            found.append(f"{order_id}: Pay never answered: {payment.error}")
        if payment.answer is not None and not payment.answer.attempts:
            found.append(f"{order_id}: Pay answered without an attempt")
        acknowledged = [a for a in (payment.order, payment.answer) if a is not None]
        if any(a.version > order.version for a in acknowledged):
            found.append(f"{order_id}: an acknowledged change is lost (version went back)")
        known = {a.attempt_id for a in order.attempts}
        if (
            payment.answer is not None
            and not {a.attempt_id for a in payment.answer.attempts} <= known
        ):
            found.append(f"{order_id}: an acknowledged attempt is lost")
        succeeded = [a for a in order.attempts if a.state == pb.SUCCEEDED]
        if len(succeeded) > 1:
            found.append(f"{order_id}: paid by {len(succeeded)} attempts")
        kept = 0
        for attempt in order.attempts:
            channel = BY_PB[attempt.channel]
            if channel is Channel.CASH:
                kept += attempt.amount_fen if attempt.state == pb.SUCCEEDED else 0
                continue
            at_provider = kept_at_provider(sandboxes, channel, attempt.attempt_id)
            expected = attempt.amount_fen if attempt.state == pb.SUCCEEDED else 0
            if at_provider != expected:
                found.append(
                    f"{attempt.attempt_id}: windowpay says {pb.AttemptState.Name(attempt.state)}"
                    f", the {channel.value} ledger kept {at_provider} fen"
                )
            kept += at_provider
        for channel in PROVIDERS:
            stray = [
                t.out_trade_no
                for t in sandboxes.bank(channel).trades()
                if t.out_trade_no.startswith(f"{order_id}-") and t.out_trade_no not in known
            ]
            if stray:
                found.append(f"{order_id}: trades windowpay does not know: {stray}")
        paid = order.state == pb.PAID
        if kept != (order.amount_fen if paid else 0):
            found.append(
                f"{order_id}: {pb.OrderState.Name(order.state)} but {kept} fen kept in all"
            )
    return found


def double_charges(final: dict[str, pb.Order], sandboxes: Sandboxes) -> int:
    """Orders for which the payer was charged more than once (provider ledgers + cash)."""
    count = 0
    for order in final.values():
        charges = 0
        for attempt in order.attempts:
            channel = BY_PB[attempt.channel]
            if channel is Channel.CASH:
                charges += attempt.state == pb.SUCCEEDED
            else:
                charges += kept_at_provider(sandboxes, channel, attempt.attempt_id) > 0
        count += charges > 1
    return count


async def checked(
    clients: Clients,
    payments: Sequence[Payment],
    sandboxes: Sandboxes,
    final: dict[str, pb.Order],
    within_s: float = 120.0,
) -> tuple[dict[str, pb.Order], list[str]]:
    """The problems left once they stop changing, within `within_s`. A FAILED attempt
    whose reversal was given up is still followed up: a late success found at the
    provider is refunded (LATE_SUCCESS_REFUNDED), and until then the ledger differs."""
    found = problems(payments, final, sandboxes)
    deadline = time.monotonic() + within_s
    while found and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        final = await settle(clients, list(final))
        found = problems(payments, final, sandboxes)
    return final, found


@dataclass
class Outcome:
    payments: list[Payment]
    final: dict[str, pb.Order]
    found: list[str]
    doubles: int
    all_final_after_s: float
    retries: int
    retried_codes: dict[str, int]
    ledgers_agree_after_s: float


async def through_fault(
    stack_data_dir: Path,
    terminals: dict[str, str],
    windows: Sequence[str],
    sandboxes: Sandboxes,
    inject: Callable[[], Awaitable[None]],
    *,
    in_flight_for_s: float = 1.0,
    converge_within_s: float = 120.0,
) -> Outcome:
    """One order per window, all paid at once; `inject` strikes once they are in flight
    (it returns when the fault is over). Then every order is followed to a final state
    and checked against the ledgers. Times are counted from the moment `inject` starts."""
    clients = Clients(stack_data_dir)
    tally = Tally()
    try:
        payments = await create_orders(clients, terminals, windows, tally)
        paying = asyncio.ensure_future(pay_all(clients, payments, tally))
        await asyncio.sleep(in_flight_for_s)
        fault = time.monotonic()
        await inject()
        await paying
        order_ids = [p.order.order_id for p in payments]
        final = await settle(clients, order_ids)
        all_final = time.monotonic() - fault
        final, found = await checked(clients, payments, sandboxes, final, converge_within_s)
        return Outcome(
            payments,
            final,
            found,
            double_charges(final, sandboxes),
            round(all_final, 1),
            tally.retries,
            dict(tally.by_code),
            round(time.monotonic() - fault, 1),
        )
    finally:
        await clients.close()

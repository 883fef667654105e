"""The BusinessGateway and Terminal services. Stateless: any number of front doors can
serve at once against the same actors and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import grpc

from orchestrator.access.logs import ThrottledWarnings
from orchestrator.access.streams import OpenStream, SlowReader
from orchestrator.access.supervisors import REFUSAL, Verdict
from orchestrator.domain import commands
from orchestrator.domain.commands import Accepted
from orchestrator.domain.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from orchestrator.domain.order import Order
from orchestrator.domain.records import decode_order
from orchestrator.domain.states import Channel, OrderState
from orchestrator.domain.validation import check_id, check_text
from orchestrator.frontdoor.convert import (
    cancel_command,
    create_command,
    order_message,
    pay_command,
    refund_command,
)
from orchestrator.frontdoor.door import Context, FrontDoor, abort, guard
from orchestrator.frontdoor.events import RESYNC, Feed
from orchestrator.frontdoor.payments import PaymentStream
from orchestrator.frontdoor.snapshot import OrderView
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from orchestrator.metrics import SUPERVISOR_PINS

log = logging.getLogger(__name__)


def refundable_before_pin(order: Order, refund: commands.RefundOrder) -> None:
    """What the actor would refuse whatever the PIN (the request's own fields, the order's
    state, the amount, the cash drawer), raised before the PIN is looked at; the actor
    checks it all again."""
    check_text(refund.reason, "reason", required=True, limit=200)
    if refund.amount_fen <= 0:
        raise InvalidArgument("amount_fen of a refund must be positive")
    if order.state not in (OrderState.PAID, OrderState.PARTIALLY_REFUNDED):
        raise FailedPrecondition(f"order {order.order_id} is {order.state}; nothing to refund")
    if not 0 < refund.amount_fen <= order.refundable_fen:
        raise FailedPrecondition(
            f"refund of {refund.amount_fen} fen refused: {order.refundable_fen} fen of order "
            f"{order.order_id} can still be refunded"
        )
    paid_in_cash = bool(order.paid_by) and order.attempt(order.paid_by).channel is Channel.CASH
    if paid_in_cash and refund.terminal_window_id != order.window_id:
        raise PermissionDenied(
            f"order {order.order_id} was paid in cash at window {order.window_id}: its cash "
            f"refund is paid from that window's drawer, so make it at a terminal of "
            f"{order.window_id}, not at {refund.terminal_window_id}"
        )


class BusinessGatewayServicer(pb_grpc.BusinessGatewayServicer):
    """The business system's side."""

    def __init__(self, door: FrontDoor) -> None:
        self._door = door
        self._payments = PaymentStream(door)

    async def WatchPayments(
        self, request: pb.WatchPaymentsRequest, context: Context
    ) -> AsyncIterator[pb.PaymentEvent]:
        async with contextlib.aclosing(self._payments.watch(request, context)) as events:
            async for event in events:  # closed with this stream: the lease is released
                yield event

    async def AckPayments(
        self, request: pb.AckPaymentsRequest, context: Context
    ) -> pb.AckPaymentsResponse:
        return await self._payments.ack(request, context)

    async def CreateOrder(self, request: pb.CreateOrderRequest, context: Context) -> pb.Order:
        door = self._door
        try:
            check_id(request.request_id, "request_id")
            sp = door.config.deployment.service_point_of_window(request.window_id)
            if sp is None:
                await abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"window_id {request.window_id!r} is not a window of this deployment",
                )
            result = await door.call(context, sp, create_command(request))
        except DomainError as error:
            await guard(context, error)
        return order_message(result.order)  # type: ignore[union-attr]

    async def GetOrder(self, request: pb.GetOrderRequest, context: Context) -> pb.Order:
        return await self._door.get_order(request, context)

    async def CancelOrder(self, request: pb.CancelOrderRequest, context: Context) -> pb.Order:
        door = self._door
        try:
            check_id(request.request_id, "request_id")
            sp = door.sp_of_order(request.order_id)
            snapshot = await door.reads.order(request.order_id)
            if snapshot is not None and not door.in_reach(OrderView.decode(snapshot).created_by):
                raise NotFound(f"order {request.order_id} not found")  # another's
            result = await door.call(context, sp, cancel_command(request))
        except DomainError as error:
            await guard(context, error)
        return order_message(result.order)  # type: ignore[union-attr]


class TerminalServicer(pb_grpc.TerminalServicer):
    def __init__(self, door: FrontDoor) -> None:
        self._door = door
        self._refusals = ThrottledWarnings(log)

    async def Pay(self, request: pb.PayRequest, context: Context) -> pb.Order:
        door = self._door
        try:
            check_id(request.request_id, "request_id")
            most = door.config.access.limits.max_cash_fen
            if not 0 <= request.cash_received_fen <= most:
                raise InvalidArgument(f"cash_received_fen must be between 0 and {most}")
            window = door.window_of_terminal(request.terminal_id)
            sp = door.sp_of_order(request.order_id)
            command = pay_command(request, window)
        except DomainError as error:
            await guard(context, error)
        return await self._until_outcome(context, sp, command)

    async def Refund(self, request: pb.RefundRequest, context: Context) -> pb.Order:
        door = self._door
        try:
            check_id(request.request_id, "request_id")
            check_id(request.supervisor_id, "supervisor_id")
            window = door.window_of_terminal(request.terminal_id)
            sp = door.sp_of_order(request.order_id)
            command = refund_command(request, window)
        except DomainError as error:
            await guard(context, error)
        # The access table checked that the order is of the terminal's service point;
        # it must also exist (in Redis or, older, in the record), and be refundable so,
        # before the PIN is counted or checked: after a right PIN only the refund (or a
        # race) remains, so the answer never tells a right PIN from a wrong one.
        try:
            snapshot = await door.reads.order_to_refund(request.order_id)
        except DomainError as error:
            await guard(context, error)
        if snapshot is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"order {request.order_id} not found")
        try:
            refundable_before_pin(Order.from_record(decode_order(snapshot)), command)
        except DomainError as error:
            await guard(context, error)
        await self._supervisor_approves(context, request, sp)
        return await self._until_outcome(context, sp, command)

    async def _supervisor_approves(
        self, context: Context, request: pb.RefundRequest, sp: str
    ) -> None:
        """The supervisor's PIN, checked before anything is reserved. Every refusal gets
        the same answer; the log and the counter say why."""
        decision = await self._door.supervisors.approve(
            request.supervisor_id, request.supervisor_pin, sp, request.terminal_id
        )
        SUPERVISOR_PINS.labels(decision.verdict.value).inc()
        if decision.verdict is Verdict.OK:
            return
        self._refusals.warning(
            (request.terminal_id, decision.verdict),
            "refund refused: supervisor not proved",
            {"supervisor_id": request.supervisor_id, "terminal_id": request.terminal_id,
             "order_id": request.order_id, "outcome": decision.verdict.value,
             "reason": decision.detail},
        )  # fmt: skip
        if decision.verdict is Verdict.UNAVAILABLE:
            await abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "the supervisor cannot be checked right now; retry with the same request_id",
            )
        await abort(context, grpc.StatusCode.PERMISSION_DENIED, REFUSAL)

    async def _until_outcome(
        self, context: Context, sp: str, command: commands.Pay | commands.RefundOrder
    ) -> pb.Order:
        """Send the command; if it started provider work, wait for that work's outcome up
        to the caller's deadline or the server's hold, whichever comes first."""
        door = self._door
        order_id = command.order_id
        with door.hub.follow_order(order_id) as feed:
            result = await door.call(context, sp, command)
            if not isinstance(result, Accepted):
                return order_message(result.order)  # type: ignore[union-attr]
            hold = door.config.settings.pay_hold_s
            remaining = context.time_remaining()
            if remaining is not None:
                hold = min(hold, remaining - min(0.5, remaining / 10))
            outcome = await self._outcome(feed, order_id, result, hold)
        return order_message(outcome)

    async def _outcome(
        self, feed: Feed, order_id: str, accepted: Accepted, hold: float
    ) -> bytes | OrderView:
        """The order once the work is final, or as it stands when the hold runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, hold)
        latest: bytes | OrderView = accepted.order
        if accepted.order and (view := OrderView.decode(accepted.order)).work_done(accepted):
            return view  # a replay of a QR payment whose code is already shown
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return await self._door.reads.order(order_id) or latest
            try:
                event = await asyncio.wait_for(feed.get(), remaining)
            except TimeoutError:
                continue
            if event is RESYNC:
                snapshot = await self._door.reads.order(order_id)
                if snapshot is None:
                    continue
            else:
                snapshot = event.snapshot
            view = OrderView.decode(snapshot)
            if view.work_done(accepted):
                return view
            latest = view

    async def GetOrder(self, request: pb.GetOrderRequest, context: Context) -> pb.Order:
        return await self._door.get_order(request, context)

    async def WatchWindow(
        self, request: pb.WatchWindowRequest, context: Context
    ) -> AsyncIterator[pb.Order]:
        door = self._door
        try:
            window = door.window_of_terminal(request.terminal_id)
        except DomainError as error:
            await guard(context, error)
        if request.window_id and request.window_id != window:
            await abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"terminal {request.terminal_id} is bound to window {window}, "
                f"not {request.window_id}",
            )
        sp = door.config.deployment.window_service_point[window]
        sent: dict[str, int] = {}
        limit = door.config.access.limits.stream_queue
        stall = door.config.access.limits.stream_stall_s
        reader = SlowReader(OpenStream(context), "terminal", stall)
        overflow = f"more than {limit} changes of window {window} unread; stream dropped"
        with door.hub.follow_window(window, limit, lambda: reader.drop(overflow)) as feed:
            for snapshot in await door.reads.window_orders(sp, window):
                message = _newer(snapshot, sent, only_open=True)
                if message is not None:
                    yield message
            while True:
                event = await feed.get()
                if event is RESYNC:
                    for snapshot in await door.reads.window_orders(sp, window):
                        message = _newer(snapshot, sent, only_open=False)
                        if message is not None:
                            yield message
                    continue
                if event.version > sent.get(event.order_id, 0):
                    sent[event.order_id] = event.version
                    yield order_message(event.snapshot)


def _newer(snapshot: bytes, sent: dict[str, int], *, only_open: bool) -> pb.Order | None:
    view = OrderView.decode(snapshot)
    if only_open and not view.watched:
        return None
    if view.version <= sent.get(view.order_id, 0):
        return None
    sent[view.order_id] = view.version
    return order_message(view)

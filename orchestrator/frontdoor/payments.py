"""BusinessGateway.WatchPayments / AckPayments: the paid-in-full loop (实缴模式).

Each subscriber (a business system) is a consumer group on every service point's
outbox stream: unacknowledged events are delivered again after a reconnect, and one
front door at a time streams to a subscriber (a lease in Redis)."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

import grpc

from orchestrator.domain.errors import DomainError, InvalidArgument
from orchestrator.domain.validation import check_id
from orchestrator.frontdoor.convert import payment_event_message
from orchestrator.frontdoor.door import Context, FrontDoor, abort, guard
from orchestrator.frontdoor.snapshot import OrderView
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.store.outbox import STORE_ERRORS, split_event_id

log = logging.getLogger(__name__)


def subscriber_group(subscriber_id: str) -> str:
    return f"sub:{subscriber_id}"


class PaymentStream:
    """BusinessGateway.WatchPayments / AckPayments: one consumer group per subscriber."""

    def __init__(self, door: FrontDoor) -> None:
        self._door = door

    async def watch(
        self, request: pb.WatchPaymentsRequest, context: Context
    ) -> AsyncGenerator[pb.PaymentEvent, None]:
        try:
            subscriber = check_id(request.subscriber_id, "subscriber_id")
        except DomainError as error:
            await guard(context, error)
        lease = self._door.subscriptions.lease(subscriber)
        if not await lease.take():
            await abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"subscriber {subscriber} is already connected; one stream per subscriber",
            )
        outbox = self._door.subscriptions.outbox()
        try:
            group = subscriber_group(subscriber)
            await outbox.join(group)
            async for event in outbox.events(group, subscriber):
                if not await lease.keep():
                    await abort(
                        context,
                        grpc.StatusCode.ABORTED,
                        "the subscription was taken over; reconnect",
                    )
                if event is None:
                    continue
                order = OrderView.decode(event.order)
                if not self._door.in_reach(order.created_by):
                    # another business system's order: never shown, done for this one
                    await outbox.ack(group, [event.event_id])
                else:
                    yield payment_event_message(
                        event.event_id, event.kind, event.at_ms, event.refund_id, order
                    )
        finally:
            try:
                await lease.release()
            except STORE_ERRORS as error:  # it lapses within its time to live
                log.warning("subscriber %s: lease not released (%r)", subscriber, error)
            await outbox.close()

    async def ack(self, request: pb.AckPaymentsRequest, context: Context) -> pb.AckPaymentsResponse:
        try:
            subscriber = check_id(request.subscriber_id, "subscriber_id")
            most = self._door.config.access.limits.ack_ids
            if len(request.event_ids) > most:
                raise InvalidArgument(f"at most {most} event ids per AckPayments")
            for event_id in request.event_ids:
                try:
                    split_event_id(event_id)
                except ValueError as error:
                    raise InvalidArgument(str(error)) from None
        except DomainError as error:
            await guard(context, error)
        outbox = self._door.subscriptions.outbox()
        try:
            count = await outbox.ack(subscriber_group(subscriber), list(request.event_ids))
        finally:
            await outbox.close()
        return pb.AckPaymentsResponse(acknowledged=count)

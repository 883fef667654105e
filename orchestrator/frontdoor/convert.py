"""Protobuf stops here: requests become commands, stored snapshots become messages."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from orchestrator.access.caller import payer_name
from orchestrator.domain.catalog import RequestedLine
from orchestrator.domain.commands import CancelOrder, CreateOrder, Pay, RefundOrder
from orchestrator.domain.errors import ErrorCode, InvalidArgument
from orchestrator.domain.states import Channel, PayMode
from orchestrator.frontdoor.snapshot import OrderView
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb

STATUS = {
    ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}

_CHANNELS = {pb.Channel.Value(channel.value): channel for channel in Channel}
_CHANNEL_NAMES = "{} or {}".format(
    ", ".join(c.value for c in list(Channel)[:-1]), list(Channel)[-1]
)


def _timestamp(ms: int | None) -> Timestamp | None:
    if ms is None:
        return None
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def order_message(snapshot: bytes | OrderView) -> pb.Order:
    """The message of an order's snapshot; pass the view if it is decoded already."""
    r = (snapshot if isinstance(snapshot, OrderView) else OrderView.decode(snapshot)).record
    return pb.Order(
        order_id=r["order_id"],
        business_no=r["business_no"],
        service_point_id=r["service_point_id"],
        window_id=r["window_id"],
        state=pb.OrderState.Value(r["state"]),
        amount_fen=r["amount_fen"],
        lines=[
            pb.OrderLine(
                fee_code=line["fee_code"],
                quantity=line["quantity"],
                unit_price_fen=line["unit_price_fen"],
                amount_fen=line["amount_fen"],
                name=line["name"],
                unit=line["unit"],
                category=line["category"],
            )
            for line in r["lines"]
        ],
        attempts=[
            pb.Attempt(
                attempt_id=a["attempt_id"],
                channel=pb.Channel.Value(a["channel"]),
                state=pb.AttemptState.Value(a["state"]),
                amount_fen=a["amount_fen"],
                provider_trade_no=a["provider_trade_no"],
                failure_reason=a["failure_reason"],
                terminal_id=a["terminal_id"],
                created_at=_timestamp(a["created_at"]),
                finished_at=_timestamp(a["finished_at"]),
                cash_received_fen=a["cash_received_fen"],
                change_fen=a["change_fen"],
                auth_code_masked=a["auth_code_masked"],
                follow_up=a["follow_up"],
                qr_code_url=a.get("qr_code_url", ""),
                qr_expires_at=_timestamp(a.get("qr_expires_at")),
                mode=pb.PayMode.Value(a.get("mode", PayMode.PAYER_PRESENTS_CODE.value)),
            )
            for a in r["attempts"]
        ],
        refunds=[
            pb.Refund(
                refund_id=f["refund_id"],
                attempt_id=f["attempt_id"],
                amount_fen=f["amount_fen"],
                state=pb.RefundState.Value(f"REFUND_{f['state']}"),
                reason=f["reason"],
                supervisor_id=f["supervisor_id"],
                terminal_id=f["terminal_id"],
                automatic=f["automatic"],
                created_at=_timestamp(f["created_at"]),
                finished_at=_timestamp(f["finished_at"]),
                provider_refund_no=f["provider_refund_no"],
                failure_reason=f["failure_reason"],
            )
            for f in r["refunds"]
        ],
        created_at=_timestamp(r["created_at"]),
        paid_at=_timestamp(r["paid_at"]),
        payer_name=payer_name(r["payer_name"]),
        version=r["version"],
        catalog_version=r["catalog_version"],
        expires_at=_timestamp(r["expires_at"]),
        cancel_reason=r["cancel_reason"],
        refunded_fen=r["refunded_fen"],
        office_id=r.get("office_id", ""),
        site_id=r.get("site_id", ""),
    )


def channel_value(channel: Channel) -> pb.Channel.ValueType:
    return pb.Channel.Value(channel.value)


def channel_of(value: int) -> Channel:
    channel: Channel | None = _CHANNELS.get(value)  # type: ignore[call-overload]
    if channel is None:
        raise InvalidArgument(f"channel is required: {_CHANNEL_NAMES}")
    return channel


def create_command(request: pb.CreateOrderRequest) -> CreateOrder:
    return CreateOrder(
        request_id=request.request_id,
        business_no=request.business_no,
        window_id=request.window_id,
        payer_name=request.payer_name,
        lines=tuple(
            RequestedLine(
                fee_code=line.fee_code,
                quantity=line.quantity,
                unit_price_fen=line.unit_price_fen if line.HasField("unit_price_fen") else None,
                amount_fen=line.amount_fen if line.HasField("amount_fen") else None,
            )
            for line in request.lines
        ),
    )


def pay_mode_of(value: int) -> PayMode:
    """Unspecified is PAYER_PRESENTS_CODE: what every client sent before modes existed."""
    if value == pb.PAYER_SCANS_QR:
        return PayMode.PAYER_SCANS_QR
    if value in (pb.PAY_MODE_UNSPECIFIED, pb.PAYER_PRESENTS_CODE):
        return PayMode.PAYER_PRESENTS_CODE
    raise InvalidArgument(f"unknown pay mode {value}")


def pay_command(request: pb.PayRequest, terminal_window: str) -> Pay:
    return Pay(
        request_id=request.request_id,
        terminal_id=request.terminal_id,
        terminal_window_id=terminal_window,
        order_id=request.order_id,
        channel=channel_of(request.channel),
        auth_code=request.auth_code,
        cash_received_fen=request.cash_received_fen,
        mode=pay_mode_of(request.mode),
    )


def cancel_command(request: pb.CancelOrderRequest) -> CancelOrder:
    return CancelOrder(
        request_id=request.request_id, order_id=request.order_id, reason=request.reason
    )


def refund_command(request: pb.RefundRequest, terminal_window: str) -> RefundOrder:
    return RefundOrder(
        request_id=request.request_id,
        terminal_id=request.terminal_id,
        terminal_window_id=terminal_window,
        order_id=request.order_id,
        amount_fen=request.amount_fen,
        reason=request.reason,
        supervisor_id=request.supervisor_id,
    )


def payment_event_message(
    event_id: str, kind: str, at_ms: int, refund_id: str, snapshot: bytes | OrderView
) -> pb.PaymentEvent:
    order = order_message(snapshot)
    message = pb.PaymentEvent(
        event_id=event_id,
        kind=pb.PaymentEventKind.Value(kind),
        order=order,
        occurred_at=_timestamp(at_ms),
    )
    for refund in order.refunds:
        if refund.refund_id == refund_id:
            message.refund.CopyFrom(refund)
    return message


def receipt_message(record: dict[str, Any], html: str | None = None) -> pb.Receipt:
    return pb.Receipt(
        receipt_code=record["receipt_code"],
        receipt_no=record["receipt_no"],
        check_code=record["check_code"],
        order_id=record["order_id"],
        business_no=record["business_no"],
        payer_name=record["payer_name"],
        items=[pb.ReceiptItem(**item) for item in record["items"]],
        total_fen=record["total_fen"],
        total_in_words=record["total_in_words"],
        issuing_unit=record["issuing_unit"],
        issuer=record["issuer"],
        issued_at=_timestamp(record["issued_at"]),
        status=pb.ReceiptStatus.Value(f"RECEIPT_{record['status']}"),
        refunded_fen=record["refunded_fen"],
        channel=record["channel"],
        html=html.encode() if html is not None else b"",
    )

"""The Receipts and BackOffice services."""

from __future__ import annotations

import asyncio
import hmac
from collections import Counter
from datetime import date, tzinfo

import grpc
import orjson

from orchestrator.access.caller import caller, payer_name
from orchestrator.domain.commands import Done, SettleLateSuccess
from orchestrator.domain.errors import DomainError
from orchestrator.domain.order import Order
from orchestrator.domain.records import OrderRecord
from orchestrator.domain.validation import (
    CHECK_CODE,
    DIGITS_8,
    DIGITS_10,
    ISO_DATE,
    TRADE_NO,
    check_id,
    check_pattern,
    check_text,
)
from orchestrator.frontdoor.convert import (
    channel_value,
    order_message,
    receipt_message,
)
from orchestrator.frontdoor.door import Context, FrontDoor, abort, guard
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from orchestrator.metrics import ACCESS_LIMITED
from orchestrator.receipts.render import render_html
from orchestrator.reconcile.settlement import SettlementRow, settle


class ReceiptsServicer(pb_grpc.ReceiptsServicer):
    def __init__(self, door: FrontDoor) -> None:
        self._door = door
        self._receipts = door.reads.receipts()  # falls back to the record

    async def GetReceipt(self, request: pb.GetReceiptRequest, context: Context) -> pb.Receipt:
        key = request.WhichOneof("key")
        if key == "order_id":
            try:
                check_id(request.order_id, "order_id")
            except DomainError as error:
                await guard(context, error)
            stored = await self._receipts.of_order(request.order_id)
            missing = f"no receipt for order {request.order_id} (is it paid?)"
        elif key == "number":
            number = request.number
            try:
                check_pattern(number.receipt_code, DIGITS_8, "receipt_code", "8 digits")
                check_pattern(number.receipt_no, DIGITS_10, "receipt_no", "10 digits")
                check_pattern(number.check_code, CHECK_CODE, "check_code", "6 letters or digits")
            except DomainError as error:
                await guard(context, error)
            stored = await self._receipts.by_number(number.receipt_code, number.receipt_no)
            missing = "no receipt with that number and check code"
        else:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "order_id or number is required")
        record = None if stored is None else orjson.loads(stored)
        if (
            record is not None
            and key == "number"
            and not hmac.compare_digest(record["check_code"], number.check_code.upper())
        ):
            record = None  # a forged or mistyped check code finds nothing
        if record is None or not self._door.in_reach(record.get("created_by", "")):
            await abort(context, grpc.StatusCode.NOT_FOUND, missing)  # another's: as if absent
        record["payer_name"] = payer_name(record["payer_name"])  # the page shows it too
        return receipt_message(record, render_html(record) if request.render_html else None)


def _settle(orders: list[OrderRecord], day: date, zone: tzinfo) -> list[SettlementRow]:
    return settle([Order.from_record(order) for order in orders], day, zone)


class BackOfficeServicer(pb_grpc.BackOfficeServicer):
    def __init__(self, door: FrontDoor) -> None:
        self._door = door
        self._settling: Counter[str] = Counter()  # GetSettlement calls in flight, by caller

    async def GetSettlement(self, request: pb.SettlementRequest, context: Context) -> pb.Settlement:
        deployment = self._door.config.deployment
        try:
            day = date.fromisoformat(check_pattern(request.date, ISO_DATE, "date", "YYYY-MM-DD"))
        except (ValueError, DomainError):
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "date must be YYYY-MM-DD")
        points = [sp.id for sp in deployment.service_points]
        if request.service_point_id:
            if request.service_point_id not in points:
                await abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"unknown service point {request.service_point_id}",
                )
            points = [request.service_point_id]
        principal = caller()
        name = principal.name if principal else ""
        most = self._door.config.access.limits.settlement_calls
        if self._settling[name] >= most:
            if principal is not None:
                ACCESS_LIMITED.labels(principal.role.value, "calls").inc()
            await abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{name}: more than {most} settlements in flight",
            )
        self._settling[name] += 1
        try:
            orders = await self._door.reads.orders_of_days(points, [day.strftime("%Y%m%d")])
            # A day of a busy office is thousands of orders: rebuilt and settled in a
            # thread (as the reads decoded them), not on the loop every call shares.
            zone = self._door.config.settings.zone
            rows = await asyncio.to_thread(_settle, orders, day, zone)
        finally:
            self._settling[name] -= 1
            if self._settling[name] <= 0:
                del self._settling[name]
        return pb.Settlement(
            date=day.isoformat(),
            rows=[
                pb.SettlementRow(
                    service_point_id=r.service_point_id,
                    window_id=r.window_id,
                    channel=channel_value(r.channel),
                    payments=r.payments,
                    payments_fen=r.payments_fen,
                    refunds=r.refunds,
                    refunds_fen=r.refunds_fen,
                )
                for r in rows
            ],
            payments_fen=sum(r.payments_fen for r in rows),
            refunds_fen=sum(r.refunds_fen for r in rows),
        )

    async def SettleLateSuccess(self, request: pb.LateSuccessRequest, context: Context) -> pb.Order:
        door = self._door
        try:
            check_id(request.request_id, "request_id")
            check_id(request.attempt_id, "attempt_id")
            check_pattern(request.provider_trade_no, TRADE_NO, "provider_trade_no", "1-64 ASCII")
            check_text(request.reason, "reason", required=True, limit=200)
            sp = door.sp_of_order(request.order_id)
        except DomainError as error:
            await guard(context, error)
        found = await door.reads.late_success(request.attempt_id)
        if found is None or not hmac.compare_digest(found, request.provider_trade_no):
            await abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"attempt {request.attempt_id} is not one reconciliation found kept by the "
                "provider with that trade number",
            )
        command = SettleLateSuccess(
            request.request_id,
            request.order_id,
            request.attempt_id,
            request.provider_trade_no,
            request.reason,
        )
        result = await door.call(context, sp, command)
        assert isinstance(result, Done)
        return order_message(result.order)

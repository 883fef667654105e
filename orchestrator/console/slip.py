"""What `windowpay pos` prints after a payment: the receipt's number and check code,
and the payer's lookup link as text and as a QR code drawn in the terminal."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from urllib.parse import urlencode

import grpc
import segno

from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from orchestrator.runfile import RunInfo


def console_of(data_dir: Path = Path("var")) -> str:
    """The running deployment's console address, from its run.json ("" if none)."""
    info = RunInfo.read(data_dir)
    return info.console if info else ""


def lookup_link(console: str, receipt: pb.Receipt) -> str:
    query = urlencode(
        {"code": receipt.receipt_code, "no": receipt.receipt_no, "check": receipt.check_code}
    )
    return f"{console}/payer/receipt?{query}"


def slip(console: str, receipt: pb.Receipt) -> str:
    link = lookup_link(console, receipt)
    drawing = io.StringIO()
    segno.make(link, error="m").terminal(out=drawing, compact=True)
    return (
        f"receipt {receipt.receipt_code}/{receipt.receipt_no}  check code {receipt.check_code}\n"
        f"check your payment: {link}\n{drawing.getvalue()}"
    )


async def receipt_of(channel: grpc.aio.Channel, order_id: str, within_s: float = 5.0) -> pb.Receipt:
    """The paid order's receipt; it is issued just after the payment, so wait a little."""
    receipts = pb_grpc.ReceiptsStub(channel)
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        try:
            return await receipts.GetReceipt(pb.GetReceiptRequest(order_id=order_id), timeout=5)
        except grpc.aio.AioRpcError as error:
            late = asyncio.get_running_loop().time() > deadline
            if error.code() != grpc.StatusCode.NOT_FOUND or late:
                raise
            await asyncio.sleep(0.2)

"""UnionPay's daily bill, in its real format (docs/DOMAIN.md §6), as BillRows.

A bill that contradicts itself or cannot be read raises BillError rather than being
half-read."""

from __future__ import annotations

from datetime import datetime

from orchestrator.channels.unionpay.adapter import VOID_SUFFIX
from orchestrator.domain.states import Channel
from orchestrator.providers.bills import BillError, BillRow

_SETTLE_KINDS = {"01": "sale", "31": "void", "04": "refund", "99": "reversal"}


def _refund_no(kind: str, order_id: str) -> str:
    """A void carries its own orderId (the refund's number and a V, void_order_id): the
    refund windowpay recorded is the one without it."""
    if kind == "31" and order_id.endswith(VOID_SUFFIX):
        return order_id.removesuffix(VOID_SUFFIX)
    return order_id


def parse_unionpay(content: bytes) -> list[BillRow]:
    lines = content.decode("utf-8").splitlines()
    if not lines or not lines[0].startswith("H|"):
        raise BillError("UnionPay settlement file: no header line")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if line.startswith("T|") or not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 9 or parts[0] != "D" or parts[1] not in _SETTLE_KINDS:
            raise BillError(f"UnionPay settlement line {number}: not a detail line")
        _, kind, order_id, original, trade_no, stamp, amount, _store, _code = parts
        try:
            at = datetime.strptime(stamp, "%Y%m%d%H%M%S")
            amount_fen = int(amount)
        except ValueError:
            raise BillError(f"UnionPay settlement line {number}: bad time or amount") from None
        sale = kind == "01"
        rows.append(
            BillRow(
                provider=Channel.UNIONPAY,
                refund=not sale,
                out_trade_no=order_id if sale else original,
                out_refund_no="" if sale or kind == "99" else _refund_no(kind, order_id),
                trade_no=trade_no,
                amount_fen=amount_fen,
                kept=True,
                at=at,
            )
        )
    header = lines[0].split("|")
    if len(header) != 5 or not header[3].isdigit() or int(header[3]) != len(rows):
        raise BillError("UnionPay settlement file: the header's count disagrees with its lines")
    return rows

"""UnionPay's settlement file as its sandbox gateway serves it, from the sandbox ledger,
in the real layout (bill.py): a zip holding `INN<yymmdd>88ZM_<merId>`, one fixed-width
GBK line per sale, void and refund of the settlement day, CRLF line ends, as in
UnionPay's sample file `802310048993424_20150905.zip`. A reversed (冲正) sale never
settles, so it is in no file. Fields windowpay does not read are filled as in the
sample (or left blank where the sample has no such row)."""

from __future__ import annotations

import io
import zipfile
from datetime import date, timedelta

from orchestrator.channels.unionpay.bill import (
    MER_ID,
    ORDER_ID,
    ORIG_QRY_ID,
    QUERY_ID,
    REFUND,
    SALE,
    TXN_AMT,
    TXN_TIME,
    TXN_TYPE,
    VOID,
    ZM_WIDTHS,
)
from orchestrator.sandbox.bank import Trade, TradeState
from orchestrator.sandbox.bills import local, payments, refunds

TRADE_CODE, TERM_ID, BIZ_TYPE, SETTLE_AMT = 0, 33, 21, 16
SAMPLE_SALE_CODE = "S56"  # the sample file's code for its sales; voids' and refunds' unknown


def unionpay_settlement(
    trades: list[Trade], day: date, mer_id: str, shift: timedelta = timedelta(0)
) -> bytes:
    """The file of settlement day `day`: `shift` is how far the settlement day runs ahead
    of the calendar day (1 h: it ends at 23:00)."""
    lines = []
    for trade in payments(trades, day, shift):
        if trade.state is TradeState.REVOKED:
            continue  # reversed: undone before it settled
        assert trade.paid_at is not None
        lines.append(_line(SALE, trade.out_trade_no, trade.trade_no, "", trade.paid_at,
                           trade.amount_fen, mer_id))  # fmt: skip
    for trade, refund in refunds(trades, day, shift):
        kind = VOID if refund.kind == "void" else REFUND
        lines.append(_line(kind, refund.out_refund_no, refund.refund_no, trade.trade_no,
                           refund.at, refund.amount_fen, mer_id))  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"INN{day:%y%m%d}88ZM_{mer_id}", b"".join(lines))
    return buffer.getvalue()


def _line(
    kind: str, order_id: str, query_id: str, orig_qry_id: str, at: float, fen: int, mer_id: str
) -> bytes:
    fields = [""] * len(ZM_WIDTHS)
    fields[TRADE_CODE] = SAMPLE_SALE_CODE if kind == SALE else ""
    fields[TXN_TIME] = local(at).strftime("%m%d%H%M%S")
    fields[TXN_AMT] = f"{fen:012d}"
    fields[QUERY_ID] = query_id
    fields[ORDER_ID] = order_id
    fields[SETTLE_AMT] = f"{'C' if kind == SALE else 'D'}{fen:012d}"
    fields[TXN_TYPE] = kind
    fields[BIZ_TYPE] = "000000"
    fields[ORIG_QRY_ID] = orig_qry_id
    fields[MER_ID] = mer_id
    # A value wider than its field is cut to it (assumed: an orderId over 32 bytes).
    cells = [v.encode("gbk")[:w].ljust(w) for v, w in zip(fields, ZM_WIDTHS, strict=True)]
    return b" ".join(cells) + b"\r\n"


def ledger_bill(trades: list[Trade], day: date) -> bytes:
    """The day's bill of an in-process sandbox ledger (orchestrator/channels/inprocess.py)."""
    return unionpay_settlement(trades, day, "sandbox")

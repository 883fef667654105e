"""UnionPay's daily bill as its sandbox gateway serves it, from the sandbox ledger
(docs/DOMAIN.md §6)."""

from __future__ import annotations

from datetime import date

from orchestrator.sandbox.bank import Trade, TradeState
from orchestrator.sandbox.bills import local, payments, refunds


def unionpay_settlement(trades: list[Trade], day: date, mer_id: str) -> bytes:
    details: list[str] = []
    sales = sales_fen = back = back_fen = 0
    for trade in payments(trades, day):
        assert trade.paid_at is not None
        details.append(
            _settle_line("01", trade.out_trade_no, "", trade, trade.paid_at, trade.amount_fen)
        )
        sales, sales_fen = sales + 1, sales_fen + trade.amount_fen
        if trade.state is TradeState.REVOKED and trade.closed_at is not None:
            details.append(
                _settle_line("99", trade.out_trade_no, trade.out_trade_no, trade,
                             trade.closed_at, trade.amount_fen)
            )  # fmt: skip
            back, back_fen = back + 1, back_fen + trade.amount_fen
    for trade, refund in refunds(trades, day):
        kind = "31" if refund.kind == "void" else "04"
        details.append(
            _settle_line(kind, refund.out_refund_no, trade.out_trade_no, trade, refund.at,
                         refund.amount_fen)
        )  # fmt: skip
        back, back_fen = back + 1, back_fen + refund.amount_fen
    stamp = day.strftime("%Y%m%d")
    lines = [
        f"H|{mer_id}|{stamp}|{len(details)}|{sales_fen - back_fen}",
        *details,
        f"T|{sales}|{sales_fen}|{back}|{back_fen}",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _settle_line(
    kind: str, order_id: str, original: str, trade: Trade, at: float, amount_fen: int
) -> str:
    stamp = local(at).strftime("%Y%m%d%H%M%S")
    return (
        f"D|{kind}|{order_id}|{original}|{trade.trade_no}|{stamp}|{amount_fen}|{trade.store_id}|00"
    )


def ledger_bill(trades: list[Trade], day: date) -> bytes:
    """The day's bill of an in-process sandbox ledger (orchestrator/channels/inprocess.py)."""
    return unionpay_settlement(trades, day, "sandbox")

"""The reports as rows and CSV: the day's settlement (computed by the same `settle` the
GetSettlement RPC uses, from the record's snapshots), the month's fee items and the
day's reconciliation with each provider."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, tzinfo
from typing import Any

import orjson

from orchestrator.console.scope import Scope
from orchestrator.domain.order import Order
from orchestrator.reconcile.settlement import SettlementRow, settle


def settlement(
    snapshots: Sequence[bytes], day: date, zone: tzinfo, scope: Scope
) -> list[SettlementRow]:
    orders = [Order.from_record(orjson.loads(s)) for s in snapshots]
    rows = settle(orders, day, zone)
    return [r for r in rows if scope.allows(r.service_point_id, r.window_id)]


def _fen(fen: int) -> str:
    return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def settlement_csv(rows: Sequence[SettlementRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["service_point_id", "window_id", "channel", "payments", "payments_yuan",
                     "refunds", "refunds_yuan", "net_yuan"])  # fmt: skip
    for r in rows:
        writer.writerow([
            r.service_point_id, r.window_id, r.channel.value, r.payments, _fen(r.payments_fen),
            r.refunds, _fen(r.refunds_fen), _fen(r.payments_fen - r.refunds_fen),
        ])  # fmt: skip
    return out.getvalue()


def fee_items_csv(rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["fee_code", "name", "quantity", "orders", "amount_yuan"])
    for r in rows:
        writer.writerow(
            [r["fee_code"], r["name"], r["quantity"], r["orders"], _fen(int(r["amount_fen"]))]
        )
    return out.getvalue()


RECONCILIATION_COLUMNS = [
    "day", "provider", "row", "count", "windowpay_yuan", "provider_yuan", "kind",
    "out_trade_no", "out_refund_no", "order_id", "detail", "action", "resolved",
]  # fmt: skip


def reconciliation_csv(
    runs: Sequence[dict[str, Any]], differences: Sequence[dict[str, Any]]
) -> str:
    """Per provider: a `payments` and a `refunds` row of what matched (both sides agree,
    so the two amounts are equal), or a `no_bill` row with the reason; then one
    `difference` row per difference of that provider."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(RECONCILIATION_COLUMNS)
    for run in runs:
        day, provider = run["day"].isoformat(), run["provider"]
        if run["failure"]:
            writer.writerow([day, provider, "no_bill", 0, "", "", "", "", "", "", run["failure"],
                             "", ""])  # fmt: skip
            continue
        for row, count, fen in (
            ("payments", run["matched_count"], run["matched_amount_fen"]),
            ("refunds", run["refunds_matched_count"], run["refunds_matched_amount_fen"]),
        ):
            writer.writerow([day, provider, row, count, _fen(fen), _fen(fen), "matched", "",
                             "", "", "", "", ""])  # fmt: skip
        for d in differences:
            if d["provider"] != provider:
                continue
            writer.writerow([
                day, provider, "difference", 1, _fen(d["windowpay_amount_fen"]),
                _fen(d["provider_amount_fen"]), d["kind"], d["out_trade_no"], d["out_refund_no"],
                d["order_id"], d["detail"], d["action"], "yes" if d["resolved"] else "no",
            ])  # fmt: skip
    return out.getvalue()

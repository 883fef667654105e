"""The reports as rows and CSV: the day's settlement (computed by the same `settle` the
GetSettlement RPC uses, from the record's snapshots), the month's fee items and the
day's reconciliation with each provider. Headers and names are in the reader's language."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, tzinfo
from typing import Any

import orjson

from orchestrator.console.i18n import Language
from orchestrator.console.labels import N_, label
from orchestrator.console.pages import FeeNames
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


def _writer(out: io.StringIO, language: Language, header: Sequence[str]) -> Any:
    """A CSV writer whose first row is the header in the language. Amounts stay plain
    numbers in yuan (a spreadsheet adds them up); names are the language's."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([language.gettext(column) for column in header])
    return writer


SETTLEMENT_COLUMNS = (
    N_("Service point"), N_("Window"), N_("Channel"), N_("Payments"), N_("Paid (yuan)"),
    N_("Number of refunds"), N_("Refunded (yuan)"), N_("Net (yuan)"),
)  # fmt: skip


def settlement_csv(rows: Sequence[SettlementRow], language: Language) -> str:
    out = io.StringIO()
    writer = _writer(out, language, SETTLEMENT_COLUMNS)
    for r in rows:
        writer.writerow([
            r.service_point_id, r.window_id, label(language, "channel", r.channel.value),
            r.payments, _fen(r.payments_fen), r.refunds, _fen(r.refunds_fen),
            _fen(r.payments_fen - r.refunds_fen),
        ])  # fmt: skip
    return out.getvalue()


FEE_ITEM_COLUMNS = (
    N_("Fee code"),
    N_("Fee item"),
    N_("Quantity"),
    N_("Number of orders"),
    N_("Amount (yuan)"),
)


def fee_items_csv(rows: Sequence[dict[str, Any]], language: Language, fees: FeeNames) -> str:
    out = io.StringIO()
    writer = _writer(out, language, FEE_ITEM_COLUMNS)
    for r in rows:
        name = fees.name(language, r["fee_code"], r["name"])
        writer.writerow(
            [r["fee_code"], name, r["quantity"], r["orders"], _fen(int(r["amount_fen"]))]
        )
    return out.getvalue()


RECONCILIATION_COLUMNS = (
    N_("Day"), N_("Provider"), N_("Row"), N_("Count"), N_("windowpay (yuan)"),
    N_("Provider (yuan)"), N_("Kind"), N_("Merchant trade no"), N_("Merchant refund no"),
    N_("Order"), N_("Detail"), N_("Action"), N_("Resolved"),
)  # fmt: skip


def reconciliation_csv(
    runs: Sequence[dict[str, Any]], differences: Sequence[dict[str, Any]], language: Language
) -> str:
    """Per provider: a `payments` and a `refunds` row of what matched (both sides agree,
    so the two amounts are equal), or a `no_bill` row with the reason; then one
    `difference` row per difference of that provider. The detail and the action are the
    reconciliation's own words."""
    out = io.StringIO()
    writer = _writer(out, language, RECONCILIATION_COLUMNS)
    yes, no = language.gettext("yes"), language.gettext("no")

    def named(kind: str, code: str) -> str:
        return label(language, kind, code)

    for run in runs:
        day, provider = run["day"].isoformat(), run["provider"]
        channel = named("channel", provider)
        if run["failure"]:
            writer.writerow([day, channel, named("row", "no_bill"), 0, "", "", "", "", "", "",
                             run["failure"], "", ""])  # fmt: skip
            continue
        for row, count, fen in (
            ("payments", run["matched_count"], run["matched_amount_fen"]),
            ("refunds", run["refunds_matched_count"], run["refunds_matched_amount_fen"]),
        ):
            writer.writerow([day, channel, named("row", row), count, _fen(fen), _fen(fen),
                             named("difference", "matched"), "", "", "", "", "", ""])  # fmt: skip
        for d in differences:
            if d["provider"] != provider:
                continue
            writer.writerow([
                day, channel, named("row", "difference"), 1, _fen(d["windowpay_amount_fen"]),
                _fen(d["provider_amount_fen"]), named("difference", d["kind"]), d["out_trade_no"],
                d["out_refund_no"], d["order_id"], d["detail"], d["action"],
                yes if d["resolved"] else no,
            ])  # fmt: skip
    return out.getvalue()

"""The reports as rows and CSV: the day's settlement (computed by the same `settle` the
GetSettlement RPC uses, from the record's snapshots), the month's fee items and the
day's reconciliation with each provider. Headers and names are in the reader's language."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from datetime import date, tzinfo
from typing import Any

from orchestrator.console.i18n import Language
from orchestrator.console.labels import N_, label
from orchestrator.console.pages import FeeNames
from orchestrator.console.scope import StaffScope
from orchestrator.domain.order import Order
from orchestrator.domain.records import decode_order
from orchestrator.reconcile.settlement import SettlementRow, settle


def settlement(
    snapshots: Sequence[bytes], day: date, zone: tzinfo, scope: StaffScope
) -> list[SettlementRow]:
    orders = [Order.from_record(decode_order(s)) for s in snapshots]
    rows = settle(orders, day, zone)
    return [r for r in rows if scope.allows(r.service_point_id, r.window_id)]


def _fen(fen: int) -> str:
    return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"


_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # how a spreadsheet knows a formula
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _cell(value: object) -> object:
    """Text that a spreadsheet would run as a formula (a provider's out_trade_no or error
    text may start with = or @) gets a leading apostrophe, which shows it as text; a
    number, a negative amount included, stays a number."""
    if isinstance(value, str) and value.startswith(_FORMULA) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class _Sheet:
    """CSV for a spreadsheet: the header in the reader's language, CRLF line ends, and
    rows whose text never runs as a formula. Amounts stay plain numbers in yuan (a
    spreadsheet adds them up)."""

    def __init__(self, language: Language, header: Sequence[str]) -> None:
        self._out = io.StringIO()
        self._writer = csv.writer(self._out, lineterminator="\r\n")
        self._writer.writerow([language.gettext(column) for column in header])

    def add(self, values: Sequence[object]) -> None:
        self._writer.writerow([_cell(value) for value in values])

    def text(self) -> str:
        return self._out.getvalue()


SETTLEMENT_COLUMNS = (
    N_("Service point"), N_("Window"), N_("Channel"), N_("Payments"), N_("Paid (yuan)"),
    N_("Number of refunds"), N_("Refunded (yuan)"), N_("Net (yuan)"),
)  # fmt: skip


def settlement_csv(rows: Sequence[SettlementRow], language: Language) -> str:
    sheet = _Sheet(language, SETTLEMENT_COLUMNS)
    for r in rows:
        sheet.add([
            r.service_point_id, r.window_id, label(language, "channel", r.channel.value),
            r.payments, _fen(r.payments_fen), r.refunds, _fen(r.refunds_fen),
            _fen(r.payments_fen - r.refunds_fen),
        ])  # fmt: skip
    return sheet.text()


FEE_ITEM_COLUMNS = (
    N_("Fee code"),
    N_("Fee item"),
    N_("Quantity"),
    N_("Number of orders"),
    N_("Amount (yuan)"),
)


def fee_items_csv(rows: Sequence[dict[str, Any]], language: Language, fees: FeeNames) -> str:
    sheet = _Sheet(language, FEE_ITEM_COLUMNS)
    for r in rows:
        name = fees.name(language, r["fee_code"], r["name"])
        sheet.add([r["fee_code"], name, r["quantity"], r["orders"], _fen(int(r["amount_fen"]))])
    return sheet.text()


RECONCILIATION_COLUMNS = (
    N_("Day"), N_("Provider"), N_("Row"), N_("Count"), N_("windowpay (yuan)"),
    N_("Provider (yuan)"), N_("Kind"), N_("Merchant trade no"), N_("Merchant refund no"),
    N_("Order"), N_("Detail"), N_("Action"), N_("Resolved"),
)  # fmt: skip


def reconciliation_csv(
    runs: Sequence[dict[str, Any]],
    differences: Sequence[dict[str, Any]],
    language: Language,
    *,
    totals: bool = True,
) -> str:
    """Per provider: a `payments` and a `refunds` row of what matched (both sides agree,
    so the two amounts are equal), or a `no_bill` row with the reason; then one
    `difference` row per difference of that provider. The detail and the action are the
    reconciliation's own words. Without `totals` (one office's reader: the totals are of
    the merchant accounts the offices share) the matched rows are left out."""
    sheet = _Sheet(language, RECONCILIATION_COLUMNS)
    yes, no = language.gettext("yes"), language.gettext("no")

    def named(kind: str, code: str) -> str:
        return label(language, kind, code)

    for run in runs:
        day, provider = run["day"].isoformat(), run["provider"]
        channel = named("channel", provider)
        if run["failure"]:
            sheet.add([day, channel, named("row", "no_bill"), 0, "", "", "", "", "", "",
                       run["failure"], "", ""])  # fmt: skip
            continue
        matched = (
            ("payments", run["matched_count"], run["matched_amount_fen"]),
            ("refunds", run["refunds_matched_count"], run["refunds_matched_amount_fen"]),
        )
        for row, count, fen in matched if totals else ():
            sheet.add([day, channel, named("row", row), count, _fen(fen), _fen(fen),
                       named("difference", "matched"), "", "", "", "", "", ""])  # fmt: skip
        for d in differences:
            if d["provider"] != provider:
                continue
            sheet.add([
                day, channel, named("row", "difference"), 1, _fen(d["windowpay_amount_fen"]),
                _fen(d["provider_amount_fen"]), named("difference", d["kind"]), d["out_trade_no"],
                d["out_refund_no"], d["order_id"], d["detail"], d["action"],
                yes if d["resolved"] else no,
            ])  # fmt: skip
    return sheet.text()

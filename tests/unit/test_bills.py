"""Bill parsers against the real published samples and the sandboxes' own bills."""

import io
import zipfile
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orchestrator.channels.alipay.bill import parse_alipay
from orchestrator.channels.alipay.sandbox_bill import alipay_trade_bill
from orchestrator.channels.unionpay.adapter import shift_of
from orchestrator.channels.unionpay.bill import parse_unionpay
from orchestrator.channels.unionpay.sandbox_bill import unionpay_settlement
from orchestrator.channels.wechat.bill import empty_bill, parse_wechat
from orchestrator.channels.wechat.sandbox_bill import wechat_trade_bill
from orchestrator.domain.states import Channel
from orchestrator.providers.bills import BillError
from orchestrator.sandbox.bank import Behaviour as B
from orchestrator.sandbox.bank import Trade, TradeRefund, TradeState

FIXTURES = Path(__file__).parent.parent / "fixtures" / "bills"


def test_the_current_wechat_bill() -> None:
    rows = parse_wechat((FIXTURES / "wechat_tradebill_27col_2021-01-28.csv").read_bytes())
    assert len(rows) == 3
    first = rows[0]
    assert (first.out_trade_no, first.trade_no) == (
        "S20210128170702357723",
        "4200000925202101284997714292",
    )
    assert first.amount_fen == 1 and first.kept and not first.refund
    assert first.at == datetime(2021, 1, 28, 17, 7, 11)


def test_the_older_wechat_bill_with_its_odd_time_format() -> None:
    rows = parse_wechat((FIXTURES / "wechat_bill_24col_micropay_2014.csv").read_bytes())
    assert [r.out_trade_no for r in rows] == ["1415640626", "1415635270"]
    assert rows[0].at == datetime(2014, 11, 10, 16, 33, 45)  # '2014-11-1016：33：45'
    assert all(r.amount_fen == 1 for r in rows)


def test_the_alipay_bill() -> None:
    rows = parse_alipay((FIXTURES / "alipay_trade_bill_2019-09-16.zip").read_bytes())
    payments = [r for r in rows if not r.refund]
    refunds = [r for r in rows if r.refund]
    assert (len(payments), len(refunds)) == (6, 4)
    assert payments[0].out_trade_no == "service_1568601259302"  # the trailing tab is gone
    assert refunds[0].out_refund_no == "re_test_1568602607356"
    assert all(r.amount_fen == 1 for r in rows)  # refunds are stored positive


def test_a_wechat_field_holding_a_comma_is_read_whole() -> None:
    text = (FIXTURES / "wechat_tradebill_27col_2021-01-28.csv").read_text()
    quoted = text.replace("`for testing", '"`科目一,科目二"')
    assert quoted.count('"`科目一,科目二"') == 3
    assert parse_wechat(quoted.encode()) == parse_wechat(text.encode())


def test_a_wechat_summary_whose_totals_disagree_is_refused() -> None:
    text = (FIXTURES / "wechat_tradebill_27col_2021-01-28.csv").read_text()
    assert "`3,`0.03,`0.00," in text
    with pytest.raises(BillError, match="应结订单总金额 is 4 fen, the rows add up to 3"):
        parse_wechat(text.replace("`3,`0.03,`0.00,", "`3,`0.04,`0.00,").encode())
    with pytest.raises(BillError, match="退款总金额 is 1 fen, the rows add up to 0"):
        parse_wechat(text.replace("`3,`0.03,`0.00,", "`3,`0.03,`0.01,").encode())


def test_a_bill_that_contradicts_itself_is_refused() -> None:
    text = (FIXTURES / "wechat_tradebill_27col_2021-01-28.csv").read_text()
    with pytest.raises(BillError, match="summary counts"):
        parse_wechat(text.replace("`3,`0.03", "`4,`0.04").encode())
    with pytest.raises(BillError, match="not a time"):
        parse_wechat(text.replace("2021-01-28 17:07:11", "yesterday").encode())
    with pytest.raises(BillError, match="not a zip"):
        parse_alipay(b"not a zip")
    with pytest.raises(BillError, match=r"^UnionPay settlement file: not a zip$"):
        parse_unionpay(b"garbage")


def _trades() -> list[Trade]:
    paid_at = datetime(2026, 11, 28, 10, 0).timestamp()
    paid = Trade("A-1", "T1", 12345, "1300", B.PAYS, "SP01", TradeState.REFUND, paid_at, paid_at)
    paid.refunds.append(TradeRefund("A-1-R1", "R1", 345, paid_at + 60))
    revoked = Trade(
        "A-2", "T2", 500, "1301", B.PAYS, "SP01", TradeState.REVOKED, paid_at, paid_at,
        closed_at=paid_at + 30,
    )  # fmt: skip
    declined = Trade("A-3", "T3", 800, "1302", B.DECLINED, "SP01", TradeState.PAYERROR, paid_at)
    return [paid, revoked, declined]


DAY = date(2026, 11, 28)


def test_the_sandbox_bills_read_back() -> None:
    trades = _trades()
    wechat = parse_wechat(wechat_trade_bill(trades, DAY, "wx1", "190"))
    assert [(r.out_trade_no, r.refund, r.kept, r.amount_fen) for r in wechat] == [
        ("A-1", False, True, 12345),
        ("A-2", False, False, 500),
        ("A-1", True, True, 345),
    ]
    alipay = parse_alipay(alipay_trade_bill(trades, DAY, "2088", 0.0))
    assert {(r.out_trade_no, r.refund, r.amount_fen) for r in alipay} == {
        ("A-1", False, 12345), ("A-2", False, 500), ("A-2", True, 500), ("A-1", True, 345),
    }  # fmt: skip
    unionpay = parse_unionpay(unionpay_settlement(trades, DAY, "898"))
    # A reversed (冲正) sale never settles: UnionPay's file lists only A-1 and its refund.
    assert {(r.out_trade_no, r.out_refund_no, r.refund) for r in unionpay} == {
        ("A-1", "", False), ("A-1", "A-1-R1", True),
    }  # fmt: skip
    assert all(r.provider is Channel.UNIONPAY for r in unionpay)
    # A day without trades has no WeChat bill (the gateway answers NO_STATEMENT_EXIST);
    # the adapter hands on the empty bill instead, which reads as no rows.
    assert wechat_trade_bill(trades, date(2026, 11, 29), "wx1", "190") == b""
    assert parse_wechat(empty_bill()) == []


def test_an_alipay_zip_with_a_gbk_name_and_a_summary_file() -> None:
    inner = alipay_trade_bill(_trades(), DAY, "2088", 0.0)
    with zipfile.ZipFile(io.BytesIO(inner)) as archive:
        [name] = archive.namelist()
        detail = archive.read(name)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("2088_20261128_业务明细(汇总).csv"), b"ignored")
        archive.writestr(zipfile.ZipInfo(name), detail)
    assert len(parse_alipay(buffer.getvalue())) == 4


def test_a_unionpay_void_names_the_refund_it_carries_out() -> None:
    paid_at = datetime(2026, 11, 28, 10, 0).timestamp()
    sale = Trade("A1", "T1", 500, "1300", B.PAYS, "SP01", TradeState.REFUND, paid_at, paid_at)
    sale.refunds.append(TradeRefund("A1L1V", "R1", 500, paid_at + 300, kind="void"))
    sale.refunds.append(TradeRefund("A1R2X", "R2", 100, paid_at + 360))
    rows = parse_unionpay(unionpay_settlement([sale], DAY, "898"))
    assert [(r.out_trade_no, r.out_refund_no, r.trade_no) for r in rows if r.refund] == [
        ("A1", "A1L1", "R1"),  # the void's own orderId is the refund's number and a V
        ("A1", "A1R2X", "R2"),  # a refund (04) keeps its number as it is
    ]
    later = parse_unionpay(unionpay_settlement([sale], date(2026, 11, 29), "898"))
    assert later == []  # nothing settled that day


def test_a_unionpay_file_holds_its_settlement_day_that_ends_at_23() -> None:
    """A sale at 23:30 Beijing time is on the next settlement day's file, as UnionPay
    files it, once the gateway is told the day ends at 23:00."""
    evening = datetime(2026, 11, 28, 23, 30, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    sale = Trade("A1", "T1", 500, "1300", B.PAYS, "SP01", TradeState.SUCCESS, evening, evening)
    shift = shift_of("23:00")
    assert parse_unionpay(unionpay_settlement([sale], DAY, "898", shift)) == []
    [row] = parse_unionpay(unionpay_settlement([sale], date(2026, 11, 29), "898", shift))
    assert (row.out_trade_no, row.amount_fen) == ("A1", 500)
    [calendar] = parse_unionpay(unionpay_settlement([sale], DAY, "898"))  # by calendar day
    assert calendar.out_trade_no == "A1"


def _detail_lines(bill: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(bill)) as archive:
        [name] = archive.namelist()  # the detail file alone, in both
        return archive.read(name).decode("gbk").splitlines()


def test_the_alipay_sandbox_bill_dates_its_day_as_the_real_bill() -> None:
    """The real bill's header runs from D 00:00:00 to D+1 00:00:00 (not D 23:59:59)."""
    real = _detail_lines((FIXTURES / "alipay_trade_bill_2019-09-16.zip").read_bytes())
    assert "#起始日期：[2019年09月16日 00:00:00]   终止日期：[2019年09月17日 00:00:00]" in real
    ours = _detail_lines(alipay_trade_bill(_trades(), date(2026, 12, 31), "2088", 0.0))
    assert "#起始日期：[2026年12月31日 00:00:00]   终止日期：[2027年01月01日 00:00:00]" in ours

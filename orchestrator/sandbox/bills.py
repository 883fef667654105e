"""Daily bills from a sandbox ledger, in each provider's own format (docs/DOMAIN.md §6):

* WeChat: CSV, every field prefixed with a backtick, a header row, data rows, then a
  summary header and one summary row; CRLF lines; amounts in yuan.
* Alipay: a zip holding a GBK CSV: '#' header lines, the 25-column detail table (refunds
  as rows of their own with negative amounts, ids ending with a tab), '#' totals.
* UnionPay: the acquirer's settlement file, '|'-separated: a header, one line per sale,
  void, refund or reversal, and a trailer with counts and sums (amounts in fen).
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

from orchestrator.domain.money import to_yuan
from orchestrator.sandbox.bank import Refund, RefundState, Trade, TradeState

BEIJING = ZoneInfo("Asia/Shanghai")
PAID_STATES = (TradeState.SUCCESS, TradeState.REFUND, TradeState.REVOKED)


def local(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, BEIJING)


def _on(timestamp: float | None, day: date) -> bool:
    return timestamp is not None and local(timestamp).date() == day


def _payments(trades: Iterable[Trade], day: date) -> Iterator[Trade]:
    for trade in sorted(trades, key=lambda t: t.paid_at or 0):
        if trade.state in PAID_STATES and _on(trade.paid_at, day):
            yield trade


def _refunds(trades: Iterable[Trade], day: date) -> Iterator[tuple[Trade, Refund]]:
    for trade in trades:
        for refund in trade.refunds:
            if refund.state is RefundState.SUCCESS and _on(refund.at, day):
                yield trade, refund


def _stamp(timestamp: float) -> str:
    return local(timestamp).strftime("%Y-%m-%d %H:%M:%S")


# ---- WeChat ----------------------------------------------------------------------------

WECHAT_COLUMNS = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
WECHAT_SUMMARY = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)


def _payer(trade: Trade) -> str:
    """A stable made-up openid for the payer behind the auth code."""
    return "o" + hashlib.sha1(trade.auth_code.encode(), usedforsecurity=False).hexdigest()[:27]


def wechat_trade_bill(trades: list[Trade], day: date, appid: str, mchid: str) -> bytes:
    rows: list[list[str]] = []
    settled = refunded = ordered = 0
    for trade in _payments(trades, day):
        assert trade.paid_at is not None
        kept = trade.state is not TradeState.REVOKED
        state = "SUCCESS" if kept else "REVOKED"
        settled += trade.amount_fen if kept else 0
        ordered += trade.amount_fen
        rows.append(
            [
                _stamp(trade.paid_at), appid, mchid, "0", trade.store_id, trade.trade_no,
                trade.out_trade_no, _payer(trade), "MICROPAY", state, "OTHERS", "CNY",
                to_yuan(trade.amount_fen if kept else 0), "0.00", "0", "0", "0.00", "0.00",
                "", "", "windowpay", "", "0.00000", "0.00%", to_yuan(trade.amount_fen),
                "0.00", "",
            ]
        )  # fmt: skip
    for trade, refund in _refunds(trades, day):
        refunded += refund.amount_fen
        rows.append(
            [
                _stamp(refund.at), appid, mchid, "0", trade.store_id, trade.trade_no,
                trade.out_trade_no, _payer(trade), "MICROPAY", "REFUND", "OTHERS", "CNY",
                "0.00", "0.00", refund.refund_no, refund.out_refund_no,
                to_yuan(refund.amount_fen), "0.00", "ORIGINAL", "SUCCESS", "windowpay", "",
                "0.00000", "0.00%", to_yuan(trade.amount_fen), to_yuan(refund.amount_fen), "",
            ]
        )  # fmt: skip
    summary = [
        str(len(rows)), to_yuan(settled), to_yuan(refunded), "0.00", "0.00000",
        to_yuan(ordered), to_yuan(refunded),
    ]  # fmt: skip
    lines = [WECHAT_COLUMNS, *(_ticked(r) for r in rows), WECHAT_SUMMARY, _ticked(summary)]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _ticked(fields: list[str]) -> str:
    """One bill line: every field with its backtick, quoted when it holds a comma."""
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(f"`{field}" for field in fields)
    return line.getvalue()


# ---- Alipay ----------------------------------------------------------------------------

ALIPAY_COLUMNS = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
    "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
)
RULE = "-" * 41


def _alipay_row(trade: Trade, kind: str, finished: float, amount_fen: int, request_no: str) -> str:
    fields = [
        f"{trade.trade_no}\t", f"{trade.out_trade_no}\t", f"{kind}\t", "windowpay",
        _stamp(trade.created_at), _stamp(finished), f"{trade.store_id}\t", f"{trade.store_id}\t",
        "windowpay\t", "\t", f"*{trade.auth_code[-4:]}(***)\t", to_yuan(amount_fen),
        to_yuan(amount_fen), "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00\t", "0.00",
        f"{request_no}\t", "0.00", "0.00", "windowpay",
    ]  # fmt: skip
    return ",".join(fields)


def alipay_trade_bill(trades: list[Trade], day: date, pid: str, exported: float) -> bytes:
    """A zip with the day's 业务明细 CSV, encoded GBK like the real download."""
    rows, paid, paid_fen, back, back_fen = [], 0, 0, 0, 0
    for trade in _payments(trades, day):
        assert trade.paid_at is not None
        rows.append(_alipay_row(trade, "交易", trade.paid_at, trade.amount_fen, ""))
        paid, paid_fen = paid + 1, paid_fen + trade.amount_fen
        if trade.state is TradeState.REVOKED and trade.closed_at is not None:
            # A cancel of a paid trade (action=refund) gives the money back.
            rows.append(_alipay_row(trade, "退款", trade.closed_at, -trade.amount_fen, "cancel"))
            back, back_fen = back + 1, back_fen + trade.amount_fen
    for trade, refund in _refunds(trades, day):
        rows.append(_alipay_row(trade, "退款", refund.at, -refund.amount_fen, refund.out_refund_no))
        back, back_fen = back + 1, back_fen + refund.amount_fen
    start = f"{day.year}年{day.month:02d}月{day.day:02d}日"
    lines = [
        "#支付宝业务明细查询",
        f"#账号：[{pid}]",
        f"#起始日期：[{start} 00:00:00]   终止日期：[{start} 23:59:59]",
        f"#{RULE}业务明细列表{RULE[:-1]}",
        ALIPAY_COLUMNS,
        *rows,
        f"#{RULE}业务明细列表结束{RULE[:-5]}",
        f"#交易合计：{paid}笔，商家实收共{to_yuan(paid_fen)}元，商家优惠共0.00元",
        f"#退款合计：{back}笔，商家实收退款共{to_yuan(-back_fen)}元，商家优惠退款共0.00元",
        f"#导出时间：[{local(exported).strftime('%Y年%m月%d日 %H:%M:%S')}]",
    ]
    stamp = day.strftime("%Y%m%d")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{pid}_{stamp}_业务明细.csv", ("\n".join(lines) + "\n").encode("gbk"))
    return buffer.getvalue()


# ---- UnionPay --------------------------------------------------------------------------


def unionpay_settlement(trades: list[Trade], day: date, mer_id: str) -> bytes:
    details: list[str] = []
    sales = sales_fen = back = back_fen = 0
    for trade in _payments(trades, day):
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
    for trade, refund in _refunds(trades, day):
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

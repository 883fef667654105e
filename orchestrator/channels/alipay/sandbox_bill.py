"""Alipay's daily bill as its sandbox gateway serves it, from the sandbox ledger
(docs/DOMAIN.md §6)."""

from __future__ import annotations

import io
import time
import zipfile
from datetime import date, timedelta

from orchestrator.domain.money import to_yuan
from orchestrator.sandbox.bank import Trade, TradeState
from orchestrator.sandbox.bills import local, payments, refunds, stamp

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
        stamp(trade.created_at), stamp(finished), f"{trade.store_id}\t", f"{trade.store_id}\t",
        "windowpay\t", "\t", f"*{trade.auth_code[-4:]}(***)\t", to_yuan(amount_fen),
        to_yuan(amount_fen), "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00\t", "0.00",
        f"{request_no}\t", "0.00", "0.00", "windowpay",
    ]  # fmt: skip
    return ",".join(fields)


def alipay_trade_bill(trades: list[Trade], day: date, pid: str, exported: float) -> bytes:
    """A zip with the day's 业务明细 CSV, encoded GBK like the real download."""
    rows, paid, paid_fen, back, back_fen = [], 0, 0, 0, 0
    for trade in payments(trades, day):
        assert trade.paid_at is not None
        rows.append(_alipay_row(trade, "交易", trade.paid_at, trade.amount_fen, ""))
        paid, paid_fen = paid + 1, paid_fen + trade.amount_fen
        if trade.state is TradeState.REVOKED and trade.closed_at is not None:
            # A cancel of a paid trade (action=refund) gives the money back.
            rows.append(_alipay_row(trade, "退款", trade.closed_at, -trade.amount_fen, "cancel"))
            back, back_fen = back + 1, back_fen + trade.amount_fen
    for trade, refund in refunds(trades, day):
        rows.append(_alipay_row(trade, "退款", refund.at, -refund.amount_fen, refund.out_refund_no))
        back, back_fen = back + 1, back_fen + refund.amount_fen
    start, end = (f"{d.year}年{d.month:02d}月{d.day:02d}日" for d in (day, day + timedelta(1)))
    lines = [
        "#支付宝业务明细查询",
        f"#账号：[{pid}]",
        f"#起始日期：[{start} 00:00:00]   终止日期：[{end} 00:00:00]",  # as the real bill
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


def ledger_bill(trades: list[Trade], day: date) -> bytes:
    """The day's bill of an in-process sandbox ledger (orchestrator/channels/inprocess.py)."""
    return alipay_trade_bill(trades, day, "sandbox", time.time())

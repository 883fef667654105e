"""WeChat Pay's daily bill, in its real format (docs/DOMAIN.md §6), as BillRows.

A bill that contradicts itself or cannot be read raises BillError rather than being
half-read."""

from __future__ import annotations

import csv
import io

from orchestrator.domain.states import Channel
from orchestrator.providers.bills import BillError, BillRow, bill_amount, bill_time

# The trade bill's columns (27, since 2021) and its summary, as WeChat Pay writes them.
COLUMNS = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
SUMMARY = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)
EMPTY_SUMMARY = ("0", "0.00", "0.00", "0.00", "0.00000", "0.00", "0.00")


def ticked(fields: list[str] | tuple[str, ...]) -> str:
    """One bill line: every field with its backtick, quoted when it holds a comma."""
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(f"`{field}" for field in fields)
    return line.getvalue()


def empty_bill() -> bytes:
    """The bill of a day without trades, which WeChat Pay does not make
    (NO_STATEMENT_EXIST): the header and a summary of nothing."""
    return ("\r\n".join([COLUMNS, SUMMARY, ticked(EMPTY_SUMMARY)]) + "\r\n").encode()


def parse_wechat(content: bytes) -> list[BillRow]:
    """WeChat's trade bill: a header, data rows whose fields start with a backtick (a
    field holding a comma is quoted, CSV style), then a summary header and row. The
    summary's count and totals must agree with the rows."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BillError("WeChat bill: not UTF-8") from None
    records = [
        [field.removeprefix("`").strip() for field in record]
        for record in csv.reader(io.StringIO(text, newline=""))
        if any(field.strip() for field in record)
    ]
    if not records or not records[0][0].startswith("交易时间"):
        raise BillError("WeChat bill: no header row")
    header = records[0]
    column = {name: index for index, name in enumerate(header)}
    summary_at = next((i for i, r in enumerate(records) if r[0].startswith("总交易单数")), None)
    if summary_at is None or summary_at + 1 >= len(records):
        raise BillError("WeChat bill: no summary")
    settle = "应结订单金额" if "应结订单金额" in column else "总金额"
    ordered = "订单金额" if "订单金额" in column else settle
    rows = []
    settled_fen = refunded_fen = 0
    for number, fields in enumerate(records[1:summary_at], start=2):
        if len(fields) != len(header):
            raise BillError(f"WeChat bill row {number}: {len(fields)} fields, not {len(header)}")

        def get(name: str, fields: list[str] = fields) -> str:
            return fields[column[name]]

        where = f"WeChat bill row {number}"
        state = get("交易状态")
        refund = state == "REFUND"
        settled_fen += bill_amount(get(settle), where)
        refunded_fen += bill_amount(get("退款金额"), where)
        rows.append(
            BillRow(
                provider=Channel.WECHAT,
                refund=refund,
                out_trade_no=get("商户订单号"),
                out_refund_no=get("商户退款单号") if refund else "",
                trade_no=get("微信订单号"),
                amount_fen=bill_amount(get("退款金额") if refund else get(ordered), where),
                kept=refund or state == "SUCCESS",
                at=bill_time(get("交易时间"), where),
            )
        )
    _check_wechat_summary(
        records[summary_at], records[summary_at + 1], rows, settled_fen, refunded_fen
    )
    return rows


def _check_wechat_summary(
    names: list[str], values: list[str], rows: list[BillRow], settled_fen: int, refunded_fen: int
) -> None:
    summary = dict(zip(names, values, strict=False))
    count = summary.get("总交易单数", "")
    if not count.isdigit() or int(count) != len(rows):
        raise BillError(f"WeChat bill: summary counts {count!r}, the bill has {len(rows)} rows")
    totals = {
        ("应结订单总金额", "总交易额"): settled_fen,
        ("退款总金额", "总退款金额"): refunded_fen,
    }
    for aliases, from_rows in totals.items():
        name = next((a for a in aliases if a in summary), None)
        if name is None:
            raise BillError(f"WeChat bill: the summary has no {aliases[0]}")
        stated = bill_amount(summary[name], f"WeChat bill summary {name}")
        if stated != from_rows:
            raise BillError(
                f"WeChat bill: summary {name} is {stated} fen, the rows add up to {from_rows}"
            )

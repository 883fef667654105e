"""Parsers for the providers' daily bills, each in its real format (docs/DOMAIN.md §6), into
one row type: a payment (money in) or a refund (money back) with its merchant-side ids.

A bill that contradicts itself (its summary disagrees with its rows) or cannot be read
raises BillError rather than being half-read.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime

from orchestrator.domain.money import from_yuan
from orchestrator.domain.states import Channel


class BillError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class BillRow:
    provider: Channel
    refund: bool  # False: a payment row; True: money given back
    out_trade_no: str
    out_refund_no: str  # refunds only ("" for a reversal of the whole trade)
    trade_no: str
    amount_fen: int  # always positive
    kept: bool  # payment rows: the money stayed (False: reversed, 撤销 / REVOKED)
    at: datetime


def _amount(text: str, where: str) -> int:
    try:
        return abs(from_yuan(text or "0"))
    except ValueError:
        raise BillError(f"{where}: {text!r} is not an amount") from None


_GLUED = re.compile(r"^(\d{4}-\d{2}-\d{2})(\d{2}:\d{2}:\d{2})$")


def _time(text: str, where: str) -> datetime:
    """'2021-01-28 17:07:11', and the older bill's '2014-11-1016：33：45' (full-width
    colons, no space) normalised explicitly."""
    normal = text.strip().replace("：", ":")
    glued = _GLUED.match(normal)
    if glued:
        normal = f"{glued.group(1)} {glued.group(2)}"
    try:
        return datetime.strptime(normal, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise BillError(f"{where}: {text!r} is not a time") from None


# ---- WeChat ----------------------------------------------------------------------------


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
        settled_fen += _amount(get(settle), where)
        refunded_fen += _amount(get("退款金额"), where)
        rows.append(
            BillRow(
                provider=Channel.WECHAT,
                refund=refund,
                out_trade_no=get("商户订单号"),
                out_refund_no=get("商户退款单号") if refund else "",
                trade_no=get("微信订单号"),
                amount_fen=_amount(get("退款金额") if refund else get(ordered), where),
                kept=refund or state == "SUCCESS",
                at=_time(get("交易时间"), where),
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
        stated = _amount(summary[name], f"WeChat bill summary {name}")
        if stated != from_rows:
            raise BillError(
                f"WeChat bill: summary {name} is {stated} fen, the rows add up to {from_rows}"
            )


# ---- Alipay ----------------------------------------------------------------------------


def _zip_name(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & 0x800:  # the name is UTF-8
        return info.filename
    return info.filename.encode("cp437").decode("gbk", errors="replace")


_TOTAL = re.compile(r"^#(交易|退款)合计：(\d+)笔")


def parse_alipay(content: bytes) -> list[BillRow]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        raise BillError("Alipay bill: not a zip file") from None
    with archive:
        details = [
            info
            for info in archive.infolist()
            if _zip_name(info).endswith(".csv") and "汇总" not in _zip_name(info)
        ]
        if not details:
            raise BillError("Alipay bill: the zip holds no detail CSV")
        rows = []
        for info in details:
            rows += _alipay_csv(archive.read(info).decode("gbk"), _zip_name(info))
        return rows


def _alipay_csv(text: str, name: str) -> list[BillRow]:
    body = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    totals = {m.group(1): int(m.group(2)) for m in map(_TOTAL.match, text.splitlines()) if m}
    if not body:
        raise BillError(f"Alipay bill {name}: no header")
    reader = csv.reader(body)
    header = [field.strip() for field in next(reader)]
    column = {field: index for index, field in enumerate(header)}
    for needed in ("支付宝交易号", "商户订单号", "业务类型", "完成时间", "订单金额（元）"):
        if needed not in column:
            raise BillError(f"Alipay bill {name}: no column {needed}")
    rows = []
    for number, fields in enumerate(reader, start=2):
        if len(fields) != len(header):
            raise BillError(f"Alipay bill {name} row {number}: {len(fields)} fields")

        def get(field: str, fields: list[str] = fields) -> str:
            return fields[column[field]].strip()

        where = f"Alipay bill {name} row {number}"
        refund = get("业务类型") == "退款"
        rows.append(
            BillRow(
                provider=Channel.ALIPAY,
                refund=refund,
                out_trade_no=get("商户订单号"),
                out_refund_no=get("退款批次号/请求号") if refund else "",
                trade_no=get("支付宝交易号"),
                amount_fen=_amount(get("订单金额（元）"), where),
                kept=True,
                at=_time(get("完成时间"), where),
            )
        )
    counted = {"交易": sum(not r.refund for r in rows), "退款": sum(r.refund for r in rows)}
    for kind, total in totals.items():
        if counted[kind] != total:
            raise BillError(
                f"Alipay bill {name}: {kind}合计 {total}, the table has {counted[kind]}"
            )
    return rows


# ---- UnionPay --------------------------------------------------------------------------

_SETTLE_KINDS = {"01": "sale", "31": "void", "04": "refund", "99": "reversal"}


def parse_unionpay(content: bytes) -> list[BillRow]:
    lines = content.decode("utf-8").splitlines()
    if not lines or not lines[0].startswith("H|"):
        raise BillError("UnionPay settlement file: no header line")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if line.startswith("T|") or not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 9 or parts[0] != "D" or parts[1] not in _SETTLE_KINDS:
            raise BillError(f"UnionPay settlement line {number}: not a detail line")
        _, kind, order_id, original, trade_no, stamp, amount, _store, _code = parts
        try:
            at = datetime.strptime(stamp, "%Y%m%d%H%M%S")
            amount_fen = int(amount)
        except ValueError:
            raise BillError(f"UnionPay settlement line {number}: bad time or amount") from None
        sale = kind == "01"
        rows.append(
            BillRow(
                provider=Channel.UNIONPAY,
                refund=not sale,
                out_trade_no=order_id if sale else original,
                out_refund_no="" if sale or kind == "99" else order_id,
                trade_no=trade_no,
                amount_fen=amount_fen,
                kept=True,
                at=at,
            )
        )
    header = lines[0].split("|")
    if len(header) != 5 or not header[3].isdigit() or int(header[3]) != len(rows):
        raise BillError("UnionPay settlement file: the header's count disagrees with its lines")
    return rows


PARSERS = {
    Channel.WECHAT: parse_wechat,
    Channel.ALIPAY: parse_alipay,
    Channel.UNIONPAY: parse_unionpay,
}

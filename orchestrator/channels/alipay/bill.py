"""Alipay's daily bill, in its real format (docs/DOMAIN.md §6), as BillRows.

A bill that contradicts itself or cannot be read raises BillError rather than being
half-read."""

from __future__ import annotations

import csv
import io
import re
import zipfile

from orchestrator.domain.states import Channel
from orchestrator.providers.bills import BillError, BillRow, bill_amount, bill_time


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
                amount_fen=bill_amount(get("订单金额（元）"), where),
                kept=True,
                at=bill_time(get("完成时间"), where),
            )
        )
    counted = {"交易": sum(not r.refund for r in rows), "退款": sum(r.refund for r in rows)}
    for kind, total in totals.items():
        if counted[kind] != total:
            raise BillError(
                f"Alipay bill {name}: {kind}合计 {total}, the table has {counted[kind]}"
            )
    return rows

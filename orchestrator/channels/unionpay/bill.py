"""UnionPay's daily settlement file (对账文件) as BillRows.

The file download's `fileContent` is the base64 of a zlib-deflated zip (the adapter
inflates it); the zip holds the merchant's files of one settlement day, named
`INN<yymmdd><batch>ZM_<merId>` (流水: one fixed-width GBK line per transaction),
`INN<yymmdd><batch>ZME_<merId>` (差错: adjustments) and summaries such as `RD...`.
A line's fields have fixed byte widths (ZM_WIDTHS, ZME_WIDTHS) and are separated by
one space, as the ACP SDK demo's reader takes them (《全渠道平台接入接口规范 第3部分
文件接口》 6.1 and 6.2). docs/PROVIDERS.md lists what no public sample settles.

A file that contradicts itself or cannot be read raises BillError rather than being
half-read."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from orchestrator.channels.unionpay.adapter import VOID_SUFFIX
from orchestrator.domain.states import Channel
from orchestrator.providers.bills import BillError, BillRow

ZM_WIDTHS = (3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2, 6,
             2, 4, 32, 1, 21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 32, 98)  # fmt: skip
ZME_WIDTHS = (3, 11, 11, 6, 10, 19, 12, 4, 2, 2, 6, 10, 4, 12, 13, 13, 15, 15, 1, 12, 2,
              135)  # fmt: skip
# Positions (0-based) of the ZM fields windowpay reads.
TXN_TIME, TXN_AMT, QUERY_ID, ORDER_ID, TXN_TYPE, ORIG_QRY_ID, MER_ID = 4, 6, 9, 11, 19, 26, 27
ZM_READ = frozenset({TXN_TIME, TXN_AMT, QUERY_ID, ORDER_ID, TXN_TYPE, ORIG_QRY_ID, MER_ID})

SALE, VOID, REFUND, REVERSAL = "01", "31", "04", "99"
_KINDS = {SALE, VOID, REFUND, REVERSAL}
_NAME = re.compile(r"INN(\d{6})\d*(ZME?)_\w+$")


def line_length(widths: Sequence[int]) -> int:
    return sum(widths) + len(widths) - 1


def split_line(
    line: bytes, widths: Sequence[int], where: str, read: frozenset[int] = frozenset()
) -> list[str]:
    """The fields of one fixed-width line (GBK, one space between fields). A field
    windowpay reads must be GBK text; another one, free text cut to its byte width, may
    end in half a character, which is read as a replacement character (as the SDK demo's
    reader reads it)."""
    if len(line) != line_length(widths):
        raise BillError(f"{where}: {len(line)} bytes, a line has {line_length(widths)}")
    fields, at = [], 0
    for index, width in enumerate(widths):
        if at and line[at - 1 : at] != b" ":
            raise BillError(f"{where}: no separator before byte {at}")
        cell = line[at : at + width]
        try:
            fields.append(cell.decode("gbk").strip())
        except UnicodeDecodeError:
            if index in read:
                raise BillError(f"{where}: not GBK text at byte {at}") from None
            fields.append(cell.decode("gbk", errors="replace").strip())
        at += width + 1
    return fields


@dataclass(frozen=True)
class _Member:
    name: str
    kind: str  # "ZM" or "ZME"
    settled: date
    content: bytes


def _members(content: bytes) -> Iterator[_Member]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        raise BillError("UnionPay settlement file: not a zip") from None
    with archive:
        for name in archive.namelist():
            found = _NAME.search(name.rsplit("/", 1)[-1])
            if found is None:
                continue  # a summary (RD...) or another report: not read
            try:
                settled = datetime.strptime(found.group(1), "%y%m%d").date()
            except ValueError:
                raise BillError(f"UnionPay settlement file {name}: bad date") from None
            yield _Member(name, found.group(2), settled, archive.read(name))


def _lines(member: _Member) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(member.content.split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        if line.strip():
            yield number, line


def _when(mmddhhmmss: str, settled: date, where: str) -> datetime:
    """The transmission time names no year: the one that puts it nearest the day."""
    try:
        at = datetime.strptime(f"{settled.year}{mmddhhmmss}", "%Y%m%d%H%M%S")
    except ValueError:
        raise BillError(f"{where}: {mmddhhmmss!r} is not a time") from None
    if at.date() - settled > timedelta(days=183):
        at = at.replace(year=at.year - 1)
    elif settled - at.date() > timedelta(days=183):
        at = at.replace(year=at.year + 1)
    return at


def _refund_no(kind: str, order_id: str) -> str:
    if kind == VOID and order_id.endswith(VOID_SUFFIX):
        return order_id.removesuffix(VOID_SUFFIX)
    return order_id


def parse_unionpay(content: bytes) -> list[BillRow]:
    members = list(_members(content))
    if not any(m.kind == "ZM" for m in members):
        raise BillError("UnionPay settlement file: no ZM (流水) file in the zip")
    records: list[tuple[list[str], date, str]] = []
    for member in members:
        for number, line in _lines(member):
            where = f"{member.name} line {number}"
            if member.kind == "ZME":
                split_line(line, ZME_WIDTHS, where)  # adjustments: read, not matched
                continue
            records.append((split_line(line, ZM_WIDTHS, where, ZM_READ), member.settled, where))
    sales = {f[QUERY_ID]: f[ORDER_ID] for f, _, _ in records if f[TXN_TYPE] == SALE}
    return [_row(fields, settled, where, sales) for fields, settled, where in records]


def _row(fields: list[str], settled: date, where: str, sales: dict[str, str]) -> BillRow:
    kind, order_id = fields[TXN_TYPE], fields[ORDER_ID]
    if kind not in _KINDS:
        raise BillError(f"{where}: txnType {kind!r} is not a sale, void, refund or reversal")
    if not fields[TXN_AMT].isdigit() or not order_id:
        raise BillError(f"{where}: bad amount or no orderId")
    sale = kind == SALE
    # A void or refund names its sale by queryId: its orderId is known if it is in the file.
    named = sale or kind == REVERSAL
    out_trade_no = order_id if named else sales.get(fields[ORIG_QRY_ID], "")
    return BillRow(
        provider=Channel.UNIONPAY,
        refund=not sale,
        out_trade_no=out_trade_no,
        out_refund_no="" if named else _refund_no(kind, order_id),
        trade_no=fields[QUERY_ID],
        amount_fen=int(fields[TXN_AMT]),
        kept=True,
        at=_when(fields[TXN_TIME], settled, where),
    )

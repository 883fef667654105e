"""The one row type every channel's daily-bill parser (orchestrator/channels/<name>/bill.py)
turns its real format into (docs/DOMAIN.md §6): a payment (money in) or a refund (money
back) with its merchant-side ids.

A bill that contradicts itself (its summary disagrees with its rows) or cannot be read
raises BillError rather than being half-read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from orchestrator.domain.money import from_yuan
from orchestrator.domain.states import Channel
from orchestrator.providers.port import ProviderRejected


class BillError(ValueError):
    pass


class NoTradesThatDay(ProviderRejected):
    """The provider refused the bill of the day because nothing happened that day
    (Alipay's isp.bill_not_exist once the bill is due): the day reconciles against no
    rows. A caller that does not know it takes it as the refusal it derives from."""


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


def bill_amount(text: str, where: str) -> int:
    try:
        return abs(from_yuan(text or "0"))
    except ValueError:
        raise BillError(f"{where}: {text!r} is not an amount") from None


_GLUED = re.compile(r"^(\d{4}-\d{2}-\d{2})(\d{2}:\d{2}:\d{2})$")


def bill_time(text: str, where: str) -> datetime:
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

"""Amounts are integer fen everywhere inside windowpay (1 yuan = 100 fen)."""

from __future__ import annotations

import re

_YUAN = re.compile(r"^(-?)(\d+)(?:\.(\d{1,2}))?$")


def to_yuan(fen: int) -> str:
    """Format fen as the yuan string providers want: 12345 -> '123.45'."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def from_yuan(text: str) -> int:
    """Parse a yuan amount with at most two decimals ('0.01', '-3', '12.5') into fen."""
    match = _YUAN.match(text.strip())
    if match is None:
        raise ValueError(f"not a yuan amount with at most two decimals: {text!r}")
    sign, whole, cents = match.groups()
    fen = int(whole) * 100 + int((cents or "0").ljust(2, "0"))
    return -fen if sign else fen

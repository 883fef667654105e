"""The official fee catalog (docs/DOMAIN.md §3) and server-side pricing.

Catalogs are versioned by the date they take effect; an order is priced with the
catalog in force on the local day it is created. Nobody types an amount.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from orchestrator.domain.errors import InvalidArgument

MAX_LINES = 20
MAX_QUANTITY = 10


class FeeCategory(StrEnum):
    PRODUCTION = "production"  # 牌证工本费
    EXAM = "exam"  # 驾驶许可考试费


@dataclass(frozen=True, slots=True)
class FeeItem:
    code: str
    category: FeeCategory
    name: str  # the official Chinese name (号牌工本费 …): receipts and pages show it
    unit: str
    price_fen: int
    name_en: str = ""  # for pages in English; "" shows the Chinese name


@dataclass(frozen=True, slots=True)
class Catalog:
    version: str
    effective_from: date
    items: Mapping[str, FeeItem]


@dataclass(frozen=True, slots=True)
class RequestedLine:
    """A fee line as the business system asks for it; prices are optional cross-checks."""

    fee_code: str
    quantity: int
    unit_price_fen: int | None = None
    amount_fen: int | None = None


@dataclass(frozen=True, slots=True)
class PricedLine:
    fee_code: str
    name: str
    unit: str
    category: FeeCategory
    quantity: int
    unit_price_fen: int
    amount_fen: int


class FeeSchedule:
    """All catalog versions; picks the one in force on a given day."""

    def __init__(self, catalogs: Sequence[Catalog]) -> None:
        if not catalogs:
            raise ValueError("at least one fee catalog is required")
        self._catalogs = sorted(catalogs, key=lambda c: c.effective_from)

    @property
    def catalogs(self) -> Sequence[Catalog]:
        return self._catalogs

    def in_force_on(self, day: date) -> Catalog:
        current: Catalog | None = None
        for catalog in self._catalogs:
            if catalog.effective_from <= day:
                current = catalog
        if current is None:
            first = self._catalogs[0]
            raise InvalidArgument(
                f"no fee catalog in force on {day}: the earliest ({first.version}) "
                f"takes effect on {first.effective_from}"
            )
        return current


def price_lines(catalog: Catalog, requested: Sequence[RequestedLine]) -> tuple[PricedLine, ...]:
    """Price the lines from the catalog, refusing anything docs/DOMAIN.md §3 forbids."""
    if not 1 <= len(requested) <= MAX_LINES:
        raise InvalidArgument(f"an order needs 1 to {MAX_LINES} lines, got {len(requested)}")
    seen: set[str] = set()
    priced = []
    for number, line in enumerate(requested, start=1):
        where = f"line {number} ({line.fee_code or 'no fee code'})"
        item = catalog.items.get(line.fee_code)
        if item is None:
            raise InvalidArgument(f"{where}: unknown fee code in catalog {catalog.version}")
        if line.fee_code in seen:
            raise InvalidArgument(f"{where}: fee code appears twice; use the quantity")
        seen.add(line.fee_code)
        if not 1 <= line.quantity <= MAX_QUANTITY:
            raise InvalidArgument(
                f"{where}: quantity must be 1 to {MAX_QUANTITY}, got {line.quantity}"
            )
        amount = item.price_fen * line.quantity
        if line.unit_price_fen is not None and line.unit_price_fen != item.price_fen:
            raise InvalidArgument(
                f"{where}: unit price {line.unit_price_fen} fen differs from the catalog's "
                f"{item.price_fen} fen"
            )
        if line.amount_fen is not None and line.amount_fen != amount:
            raise InvalidArgument(
                f"{where}: amount {line.amount_fen} fen differs from the catalog's {amount} fen"
            )
        priced.append(
            PricedLine(
                fee_code=item.code,
                name=item.name,
                unit=item.unit,
                category=item.category,
                quantity=line.quantity,
                unit_price_fen=item.price_fen,
                amount_fen=amount,
            )
        )
    return tuple(priced)

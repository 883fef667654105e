"""Pricing's refusals and boundaries, value for value, written for the mutants of
domain/catalog.py that `make mutate` found alive."""

from __future__ import annotations

from datetime import date

import pytest

from orchestrator.domain.catalog import (
    Catalog,
    FeeCategory,
    FeeItem,
    FeeSchedule,
    PricedLine,
    RequestedLine,
    price_lines,
)
from orchestrator.domain.errors import InvalidArgument

ITEMS = {
    f"F{n:02d}": FeeItem(f"F{n:02d}", FeeCategory.EXAM, f"费{n}", "次", 100 * n)
    for n in range(1, 22)
}
V1 = Catalog("2026-01", date(2026, 1, 1), ITEMS)
V2 = Catalog("2027-01", date(2027, 1, 1), ITEMS)


def refusal(lines: list[RequestedLine]) -> str:
    with pytest.raises(InvalidArgument) as refused:
        price_lines(V1, lines)
    return refused.value.message


def test_lines_are_priced_with_the_catalogs_names() -> None:
    assert price_lines(V1, [RequestedLine("F03", 10)]) == (
        PricedLine("F03", "费3", "次", FeeCategory.EXAM, 10, 300, 3000),
    )
    twenty = [RequestedLine(f"F{n:02d}", 1) for n in range(1, 21)]
    assert len(price_lines(V1, twenty)) == 20


def test_each_refusal_names_its_line() -> None:
    assert refusal([]) == "an order needs 1 to 20 lines, got 0"
    assert refusal([RequestedLine(f"F{n:02d}", 1) for n in range(1, 22)]) == (
        "an order needs 1 to 20 lines, got 21"
    )
    assert refusal([RequestedLine("F01", 1), RequestedLine("NOPE", 1)]) == (
        "line 2 (NOPE): unknown fee code in catalog 2026-01"
    )
    assert (
        refusal([RequestedLine("", 1)])
        == "line 1 (no fee code): unknown fee code in catalog 2026-01"
    )
    assert refusal([RequestedLine("F01", 1), RequestedLine("F01", 2)]) == (
        "line 2 (F01): fee code appears twice; use the quantity"
    )
    assert refusal([RequestedLine("F01", 11)]) == "line 1 (F01): quantity must be 1 to 10, got 11"
    assert refusal([RequestedLine("F01", 0)]) == "line 1 (F01): quantity must be 1 to 10, got 0"
    assert refusal([RequestedLine("F02", 1, unit_price_fen=201)]) == (
        "line 1 (F02): unit price 201 fen differs from the catalog's 200 fen"
    )
    assert refusal([RequestedLine("F02", 3, amount_fen=601)]) == (
        "line 1 (F02): amount 601 fen differs from the catalog's 600 fen"
    )
    assert price_lines(V1, [RequestedLine("F02", 3, 200, 600)])[0].amount_fen == 600


def test_the_catalog_in_force_is_the_latest_that_took_effect() -> None:
    schedule = FeeSchedule([V2, V1])
    assert schedule.catalogs == [V1, V2]
    assert schedule.in_force_on(date(2026, 12, 31)) is V1
    assert schedule.in_force_on(date(2027, 1, 1)) is V2
    with pytest.raises(InvalidArgument) as early:
        schedule.in_force_on(date(2025, 12, 31))
    assert early.value.message == (
        "no fee catalog in force on 2025-12-31: the earliest (2026-01) takes effect on 2026-01-01"
    )
    with pytest.raises(ValueError, match=r"^at least one fee catalog is required$"):
        FeeSchedule([])

from datetime import date

import pytest

from orchestrator.config import load_config
from orchestrator.domain.catalog import Catalog, FeeSchedule, RequestedLine, price_lines
from orchestrator.domain.errors import InvalidArgument

CATALOG = load_config().fees.in_force_on(date(2026, 11, 28))


def line(code: str, quantity: int = 1, **prices: int) -> RequestedLine:
    return RequestedLine(code, quantity, prices.get("unit"), prices.get("amount"))


def test_the_sample_catalog_has_the_eighteen_items_of_domain_md() -> None:
    assert len(CATALOG.items) == 18
    assert CATALOG.items["PLT-AUTO"].price_fen == 10000
    assert CATALOG.items["EXM-K2-CAR"].price_fen == 24000
    assert CATALOG.items["PLT-SEAL"].price_fen == 100


def test_prices_come_from_the_catalog() -> None:
    priced = price_lines(CATALOG, [line("PLT-AUTO"), line("DOC-VLIC", 2)])
    assert [(p.fee_code, p.unit_price_fen, p.amount_fen) for p in priced] == [
        ("PLT-AUTO", 10000, 10000),
        ("DOC-VLIC", 1000, 2000),
    ]


def test_matching_client_figures_are_accepted() -> None:
    priced = price_lines(CATALOG, [line("EXM-K1", 2, unit=8000, amount=16000)])
    assert priced[0].amount_fen == 16000


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "1 to 20 lines"),
        (
            [line(code) for code in list(CATALOG.items)[:18]]
            + [line("X1"), line("X2"), line("X3")],
            "1 to 20 lines",
        ),
        ([line("NOPE")], "unknown fee code"),
        ([line("PLT-AUTO"), line("PLT-AUTO")], "appears twice"),
        ([line("PLT-AUTO", 0)], "quantity must be 1 to 10"),
        ([line("PLT-AUTO", -1)], "quantity must be 1 to 10"),
        ([line("PLT-AUTO", 11)], "quantity must be 1 to 10"),
        ([line("PLT-AUTO", unit=9999)], "differs from the catalog"),
        ([line("PLT-AUTO", 2, amount=10000)], "differs from the catalog"),
    ],
)
def test_bad_lines_are_refused(lines: list[RequestedLine], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        price_lines(CATALOG, lines)


def test_the_catalog_in_force_on_a_day_is_chosen_by_effective_date() -> None:
    old = Catalog("2023", date(2023, 1, 1), CATALOG.items)
    new = Catalog("2025", date(2025, 7, 1), CATALOG.items)
    schedule = FeeSchedule([new, old])
    assert schedule.in_force_on(date(2025, 6, 30)).version == "2023"
    assert schedule.in_force_on(date(2025, 7, 1)).version == "2025"
    with pytest.raises(InvalidArgument, match="no fee catalog in force"):
        schedule.in_force_on(date(2022, 12, 31))

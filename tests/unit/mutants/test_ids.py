"""Order ids and service point ids (domain/ids.py): each refusal's whole message, and the
look-up from an attempt id back to its order across service points of two widths. Written
for the mutants of domain/ids.py that tests/unit/test_ids.py let live (it reads a part
of each message and one width of service point)."""

from __future__ import annotations

import pytest

from orchestrator.domain import ids
from orchestrator.domain.errors import InvalidArgument


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SP01K2M9", "'SP01K2M9' is not an order id: it has no '-' after the service point"),
        ("sp01-K2M9", "'sp01-K2M9' is not an order id: it must start with 1-8 capital letters "
            "or digits"),
        ("SP01-K2.M9", "'SP01-K2.M9' is not an order id: after the '-' come 1-32 letters or "
            "digits"),
    ],
)  # fmt: skip
def test_each_malformed_order_id_is_refused_with_its_whole_message(text: str, message: str) -> None:
    with pytest.raises(ids.MalformedOrderId) as refused:
        ids.service_point_of(text)
    assert refused.value.message == message


def test_a_long_text_is_quoted_to_its_first_80_characters() -> None:
    long = "G1-" + "X" * 30 + "." + "Y" * 100  # 134 characters
    with pytest.raises(ids.MalformedOrderId) as refused:
        ids.service_point_of(long)
    quoted = "'G1-" + "X" * 30 + "." + "Y" * 46 + "'"  # 3 + 30 + 1 + 46 = 80
    assert refused.value.message == (
        f"{quoted} is not an order id: after the '-' come 1-32 letters or digits"
    )
    with pytest.raises(InvalidArgument) as refused_sp:
        ids.check_service_point("s" * 100)
    assert refused_sp.value.message == (
        f"service point id '{'s' * 80}' must be 1-8 capital letters or digits"
    )


def test_an_attempt_id_is_found_among_service_points_of_two_widths() -> None:
    long_sp, short_sp = "ABCDEFG8", "SP01"  # compact prefixes of 20 and 18 characters
    lookup = ids.OrderIds([long_sp, short_sp])  # the 20-wide one is tried first
    short_order = f"{short_sp}-K2M9XZ4TBA7QJ5"
    long_order = f"{long_sp}-K2M9XZ4TBA7QJ5"
    assert ids.compact(short_order) == "SP01K2M9XZ4TBA7QJ5"
    assert ids.compact(long_order) == "CDEFG8K2M9XZ4TBA7QJ5"  # its last 20
    assert lookup.of("SP01K2M9XZ4TBA7QJ5P1ABC") == [short_order]
    assert lookup.of("CDEFG8K2M9XZ4TBA7QJ5P2") == [long_order]
    assert ids.OrderIds([short_sp, long_sp]).of("SP01K2M9XZ4TBA7QJ5P1ABC") == [short_order]


def test_an_id_not_followed_by_p_names_no_order() -> None:
    lookup = ids.OrderIds(["SP01"])
    assert lookup.of("SP01K2M9XZ4TBA7QJ5P1") == ["SP01-K2M9XZ4TBA7QJ5"]
    assert lookup.of("SP01K2M9XZ4TBA7QJ5R1") == []  # another letter after the order's part
    assert lookup.of("SP01K2M9XZ4TBA7QJ5") == []  # nothing after it
    assert lookup.of("SP01K2M9XZ4TBA7QJ") == []  # too short

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.domain.money import from_yuan, to_yuan


@pytest.mark.parametrize(
    ("fen", "text"),
    [(0, "0.00"), (1, "0.01"), (10000, "100.00"), (12345, "123.45"), (-150, "-1.50")],
)
def test_to_yuan(fen: int, text: str) -> None:
    assert to_yuan(fen) == text


@pytest.mark.parametrize(("text", "fen"), [("0.01", 1), ("12.5", 1250), ("3", 300), ("-0.60", -60)])
def test_from_yuan(text: str, fen: int) -> None:
    assert from_yuan(text) == fen


@pytest.mark.parametrize("text", ["", "1.234", "abc", "1,00", "0.0.1"])
def test_from_yuan_refuses_what_is_not_an_amount(text: str) -> None:
    with pytest.raises(ValueError, match="yuan"):
        from_yuan(text)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_yuan_round_trip(fen: int) -> None:
    assert from_yuan(to_yuan(fen)) == fen

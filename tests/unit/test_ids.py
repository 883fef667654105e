"""Order ids and service point ids are made and read in one module (domain/ids.py), and
the router is the one way from an order id to its actor."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from orchestrator.domain import ids
from orchestrator.domain.commands import Command, Result
from orchestrator.domain.errors import InvalidArgument, NotFound
from orchestrator.frontdoor.router import Router


def test_a_made_order_id_names_its_service_point() -> None:
    made = ids.new_order_id("SP01", lambda n: bytes(range(n)))
    # base32 of 00 01 02 ... 09 is AAAQEAYEAUDAOCAJ; its first 14 characters are kept
    assert made == "SP01-AAAQEAYEAUDAOC"
    assert ids.service_point_of(made) == "SP01"


@pytest.mark.parametrize("sp", ["G", "SP01", "ABCDEFG8", "0"])
def test_made_ids_round_trip_for_every_shape_of_service_point(sp: str) -> None:
    made = {ids.new_order_id(sp) for _ in range(50)}
    assert len(made) == 50  # fresh randomness each time
    for order_id in made:
        assert len(order_id) == len(sp) + 1 + ids.ORDER_TOKEN_LENGTH
        assert ids.service_point_of(order_id) == sp


def test_ids_made_elsewhere_still_name_their_service_point() -> None:
    # ids of the tests, the load test's console data and the record's fixtures
    assert ids.service_point_of("SP01-X") == "SP01"
    assert ids.service_point_of("G1-0101000042") == "G1"
    assert ids.service_point_of("XA1B2C-3f9a0c7d1e2b4a56") == "XA1B2C"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no '-'"),
        ("SP01K2M9XZ4TBA7Q", "no '-'"),
        ("-K2M9XZ4TBA7Q", "1-8 capital letters or digits"),
        ("sp01-K2M9XZ4TBA7Q", "1-8 capital letters or digits"),
        ("SP0123456-K2M9XZ4TBA7Q", "1-8 capital letters or digits"),
        ("Ｇ1-K2M9XZ4TBA7Q", "1-8 capital letters or digits"),  # full-width G
        ("SP01-", "1-32 letters or digits"),
        ("SP01--X", "1-32 letters or digits"),
        ("SP01-K2M9.XZ4", "1-32 letters or digits"),
        ("SP01-K2M9XZ4TBA7Q\n", "1-32 letters or digits"),
        ("SP01-" + "K" * 33, "1-32 letters or digits"),
    ],
)
def test_malformed_order_ids_are_refused_saying_why(text: str, why: str) -> None:
    with pytest.raises(ids.MalformedOrderId) as refused:
        ids.service_point_of(text)
    assert refused.value.message.startswith(f"{text[:80]!r} is not an order id: ")
    assert why in refused.value.message
    assert isinstance(refused.value, InvalidArgument)  # INVALID_ARGUMENT at the edge


def test_a_long_malformed_id_is_cut_short_in_the_message() -> None:
    with pytest.raises(ids.MalformedOrderId) as refused:
        ids.service_point_of("G1-" + "X" * 70_000)
    assert len(refused.value.message) < 200


def test_a_made_id_needs_a_well_formed_service_point() -> None:
    assert ids.check_service_point("SP01") == "SP01"
    for bad in ("", "sp01", "SP-01", "SP0123456"):
        with pytest.raises(InvalidArgument, match="must be 1-8 capital letters or digits"):
            ids.new_order_id(bad)


def test_an_attempt_id_leads_back_to_its_order() -> None:
    order_id = ids.new_order_id("SP01")
    attempt_id = f"{ids.compact(order_id)}P1ABC123"
    assert ids.compact(order_id) == order_id.replace("-", "")
    assert ids.order_ids_of(attempt_id, ["SP01", "SP02"]) == [order_id]
    assert ids.order_ids_of(attempt_id, ["SP02"]) == []


class _Echo:
    def __init__(self, name: str) -> None:
        self.name = name

    async def submit(self, commands: Sequence[Command]) -> list[Result]:
        raise AssertionError("route() sends nothing")

    async def ready(self) -> bool:
        return True


def test_the_router_routes_an_order_id_to_its_service_points_actor() -> None:
    router = Router({"SP01": _Echo("a"), "SP02": _Echo("a"), "SP03": _Echo("b")})
    assert router.route("SP02-K2M9XZ4TBA7Q") == "SP02"
    for unknown in ("SP09-K2M9XZ4TBA7Q", "SP01", "sp01-K2M9XZ4TBA7Q", ""):
        with pytest.raises(NotFound, match="not found"):
            router.route(unknown)

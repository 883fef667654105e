"""The record's reads compose the live ones (record/recorded_reads.py): Redis first, the
record only for what has left it, and an index still in Redis followed into the record
by what it names. Fakes on both sides: no Redis, no PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.domain.errors import Unavailable
from orchestrator.record.recorded_reads import RecordedReads


class LiveReceipts:
    def __init__(self) -> None:
        self.bound: dict[str, tuple[str, str]] = {}
        self.held: dict[tuple[str, str], bytes] = {}

    async def number_of_order(self, order_id: str) -> tuple[str, str] | None:
        return self.bound.get(order_id)

    async def of_order(self, order_id: str) -> bytes | None:
        bound = self.bound.get(order_id)
        return None if bound is None else self.held.get(bound)

    async def by_number(self, code: str, number: str) -> bytes | None:
        return self.held.get((code, number))


class Live:
    def __init__(self) -> None:
        self.orders: dict[str, bytes] = {}
        self.cases: dict[str, str] = {}
        self.live_receipts = LiveReceipts()

    async def order(self, order_id: str) -> bytes | None:
        return self.orders.get(order_id)

    async def order_id_of_case(self, business_no: str) -> str | None:
        return self.cases.get(business_no)

    async def late_success(self, attempt_id: str) -> str | None:
        return "T-1" if attempt_id == "A-1" else None

    def receipts(self) -> LiveReceipts:
        return self.live_receipts


class Record:
    """The record as RecordReader answers; `away` makes every read fail as a lost
    connection does."""

    def __init__(self) -> None:
        self.orders: dict[str, bytes] = {}
        self.latest_of_case: dict[str, bytes] = {}
        self.receipts: dict[tuple[str, str], bytes] = {}
        self.receipt_of: dict[str, bytes] = {}
        self.away = False

    def _check(self) -> None:
        if self.away:
            raise OSError("connection refused")

    async def order(self, order_id: str) -> bytes | None:
        self._check()
        return self.orders.get(order_id)

    async def order_of_case(self, business_no: str) -> bytes | None:
        self._check()
        return self.latest_of_case.get(business_no)

    async def receipt(self, code: str, number: str) -> bytes | None:
        self._check()
        return self.receipts.get((code, number))

    async def receipt_of_order(self, order_id: str) -> bytes | None:
        self._check()
        return self.receipt_of.get(order_id)


def reads() -> tuple[RecordedReads, Live, Record]:
    live, record = Live(), Record()
    return RecordedReads(live, record), live, record  # type: ignore[arg-type]


async def test_redis_answers_first_and_the_record_what_left_it() -> None:
    recorded, live, record = reads()
    live.orders["SP01-A"] = b"live"
    record.orders |= {"SP01-A": b"older", "SP01-B": b"recorded"}
    assert await recorded.order("SP01-A") == b"live"
    assert await recorded.order("SP01-B") == b"recorded"
    assert await recorded.order("SP01-C") is None
    assert await recorded.late_success("A-1") == "T-1"


async def test_a_record_away_is_unknown_for_a_read_and_unavailable_for_a_refund() -> None:
    recorded, live, record = reads()
    live.orders["SP01-A"] = b"live"
    record.away = True
    assert await recorded.order("SP01-B") is None
    assert await recorded.order_to_refund("SP01-A") == b"live"  # Redis alone could say
    with pytest.raises(Unavailable, match="retry with the same request_id"):
        await recorded.order_to_refund("SP01-B")


async def test_a_case_indexed_in_redis_is_the_order_it_names_even_from_the_record() -> None:
    """The case index outlives the order's snapshot in Redis: the answer is the order
    it names (read from the record), not the record's latest order of the case."""
    recorded, live, record = reads()
    live.cases["B1"] = "SP01-A"
    record.orders["SP01-A"] = b"named"
    record.latest_of_case["B1"] = b"latest"
    assert await recorded.order_of_case("B1") == b"named"
    record.latest_of_case["B2"] = b"only recorded"
    assert await recorded.order_of_case("B2") == b"only recorded"
    record.away = True
    assert await recorded.order_of_case("B1") is None


async def test_a_receipt_bound_in_redis_is_read_by_its_number_from_the_record() -> None:
    recorded, live, record = reads()
    receipts: Any = recorded.receipts()
    live.live_receipts.bound["SP01-A"] = ("12345678", "0000000001")
    record.receipts[("12345678", "0000000001")] = b"by number"
    record.receipt_of["SP01-A"] = b"by order"
    assert await receipts.of_order("SP01-A") == b"by number"
    record.receipt_of["SP01-B"] = b"only recorded"
    assert await receipts.of_order("SP01-B") == b"only recorded"
    live.live_receipts.held[("12345678", "0000000002")] = b"live"
    assert await receipts.by_number("12345678", "0000000002") == b"live"
    record.away = True
    assert await receipts.by_number("12345678", "0000000001") is None

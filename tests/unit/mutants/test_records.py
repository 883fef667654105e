"""The typed records' codec (domain/records.py), value for value: which keys each record
must have, what a refusal says, and the order's openness read from its snapshot, written
for the mutants of records.py that `make mutate` found alive."""

from __future__ import annotations

import orjson
import pytest

from orchestrator.domain.catalog import FeeCategory, PricedLine
from orchestrator.domain.order import Order
from orchestrator.domain.records import (
    AttemptRecord,
    JournalEntry,
    LineRecord,
    MalformedRecord,
    OrderRecord,
    RefundRecord,
    _required,
    decode_entry,
    decode_order,
    decode_orders,
    encode_order,
    is_open,
)

NOW = 1_800_000_000_000
LINES = (PricedLine("PLT-AUTO", "机动车号牌", "副", FeeCategory.PRODUCTION, 1, 10000, 10000),)


def new_order(order_id: str) -> Order:
    order, _ = Order.create(
        order_id=order_id, business_no="B1", service_point_id="SP01", window_id="W01",
        payer_name="张三", lines=LINES, catalog_version="2027-01", now=NOW,
        expires_at=NOW + 3_600_000,
    )  # fmt: skip
    return order


def test_each_record_requires_exactly_its_fields_of_before() -> None:
    """The keys a stored record must hold: every field but those written later."""
    assert _required(OrderRecord) == frozenset(OrderRecord.__annotations__) - {
        "created_by", "office_id", "site_id",
    }  # fmt: skip
    assert _required(AttemptRecord) == frozenset(AttemptRecord.__annotations__) - {
        "mode", "qr_code_url", "qr_expires_at",
    }  # fmt: skip
    assert _required(LineRecord) == frozenset(LineRecord.__annotations__)
    assert _required(RefundRecord) == frozenset(RefundRecord.__annotations__)
    assert _required(JournalEntry) == frozenset({"v", "at", "what", "order_state"})


def test_bytes_that_are_not_json_are_refused_naming_the_record() -> None:
    with pytest.raises(MalformedRecord, match=r"^an order snapshot is not JSON: \S"):
        decode_order(b'{"order_id": ')
    with pytest.raises(MalformedRecord, match=r"^a journal entry is not JSON: \S"):
        decode_entry(b'{"v": ')


def test_a_refusal_names_every_missing_key_comma_separated() -> None:
    record = orjson.loads(encode_order(new_order("SP01-0123456789ABCD").to_record()))
    del record["version"], record["paid_by"]
    with pytest.raises(MalformedRecord) as refused:
        decode_order(orjson.dumps(record))
    assert str(refused.value) == (
        "the snapshot of order SP01-0123456789ABCD lacks paid_by, version"
    )
    record = orjson.loads(encode_order(new_order("SP01-0123456789ABCD").to_record()))
    del record["lines"][0]["name"], record["lines"][0]["unit"]
    with pytest.raises(MalformedRecord) as refused:
        decode_order(orjson.dumps(record))
    assert str(refused.value) == "a line of order SP01-0123456789ABCD lacks name, unit"


def test_an_entry_with_only_its_required_keys_is_read() -> None:
    stored = b'{"v":1,"at":5,"what":"created","order_state":"AWAITING_PAYMENT"}'
    assert decode_entry(stored) == {
        "v": 1, "at": 5, "what": "created", "order_state": "AWAITING_PAYMENT",
    }  # fmt: skip


def test_snapshots_are_decoded_each_in_its_order() -> None:
    first, second = new_order("SP01-A"), new_order("SP01-B")
    stored = [encode_order(first.to_record()), encode_order(second.to_record())]
    assert decode_orders(stored) == [first.to_record(), second.to_record()]
    assert decode_orders([]) == []


def test_an_order_awaiting_payment_with_no_attempt_is_open_by_its_state() -> None:
    record = decode_order(encode_order(new_order("SP01-A").to_record()))
    assert record["attempts"] == [] and record["refunds"] == []
    assert is_open(record)
    record["state"] = "CANCELLED"
    assert not is_open(record)

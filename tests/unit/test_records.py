"""The typed records and their one codec (orchestrator/domain/records.py).

The files under tests/fixtures/records/ are the bytes the code before the typed records
wrote for the orders and journal entries built below (Order.to_record and the service
point's journal entry, linked into the chain, as orjson encoded them). Redis, the record,
the hash chain and the gRPC contract hold data in this form, so the writers must go on
producing these very bytes and the codec must give them back unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import orjson
import pytest

from orchestrator.domain.catalog import FeeCategory, PricedLine
from orchestrator.domain.order import Change, Order
from orchestrator.domain.records import (
    MalformedRecord,
    decode_entry,
    decode_order,
    encode_entry,
    encode_order,
    is_open,
)
from orchestrator.domain.states import AttemptEvent, Channel, PayMode
from orchestrator.servicepoint.group_commit import GroupCommit
from orchestrator.servicepoint.orders import OrderBook
from orchestrator.store import chain

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "records"
T0 = 1_767_600_000_000
LINES = (
    PricedLine("F001", "挂号费", "次", FeeCategory.PRODUCTION, 1, 500, 500),
    PricedLine("F002", "检查费", "项", FeeCategory.EXAM, 3, 1200, 3600),
)


def paid_with_refund_pending() -> tuple[Order, Change]:
    """A failed attempt under follow-up, a cash payment with change, a refund pending."""
    order, _ = Order.create(
        order_id="SP01-W01-20260105-000042", business_no="B-7", service_point_id="SP01",
        window_id="W01", payer_name="张三", lines=LINES, catalog_version="2026.1", now=T0,
        expires_at=T0 + 1_800_000, created_by="his",
    )  # fmt: skip
    order.start_attempt(
        attempt_id="A1", channel=Channel.WECHAT, terminal_id="T1", request_id="r1",
        now=T0 + 1000, auth_code_masked="1234********5678",
    )  # fmt: skip
    order.record_attempt("A1", AttemptEvent.NO_ANSWER, T0 + 2000, reason="timeout")
    order.record_attempt("A1", AttemptEvent.REVERSAL_STARTED, T0 + 3000)
    order.record_attempt("A1", AttemptEvent.REVERSAL_ABANDONED, T0 + 4000, reason="gave up")
    order.start_attempt(
        attempt_id="A2", channel=Channel.CASH, terminal_id="T1", request_id="r2",
        now=T0 + 5000, cash_received_fen=5000,
    )  # fmt: skip
    order.record_attempt("A2", AttemptEvent.PAID, T0 + 6000, trade_no="cash-1")
    change = order.request_refund(
        amount_fen=700, reason="wrong item", supervisor_id="S9", terminal_id="T1",
        request_id="r3", now=T0 + 7000, nonce="abc123",
    )  # fmt: skip
    return order, change


def qr_awaiting_payer() -> tuple[Order, Change]:
    order, _ = Order.create(
        order_id="SP02-W03-20260105-000007", business_no="B-8", service_point_id="SP02",
        window_id="W03", payer_name="李四", lines=LINES[:1], catalog_version="2026.1",
        now=T0, expires_at=T0 + 1_800_000,
    )  # fmt: skip
    order.start_attempt(
        attempt_id="Q1", channel=Channel.ALIPAY, terminal_id="T3", request_id="q1",
        now=T0 + 1000, mode=PayMode.PAYER_SCANS_QR,
    )  # fmt: skip
    change = order.record_attempt(
        "Q1", AttemptEvent.QR_CODE_READY, T0 + 2000, qr_code_url="https://qr.example/x",
        qr_expires_at=T0 + 302_000,
    )  # fmt: skip
    return order, change


def at_an_office() -> tuple[Order, Change]:
    """An order made in a deployment that declares offices: its office and site written
    after the fields of before (the shape since orders carry their office)."""
    order, change = Order.create(
        order_id="SP22-W49-20260105-000003", business_no="B-9", service_point_id="SP22",
        window_id="W49", payer_name="王五", lines=LINES[:1], catalog_version="2026.1",
        now=T0, expires_at=T0 + 1_800_000, created_by="his", office_id="QJ", site_id="QJ-QL",
    )  # fmt: skip
    return order, change


def golden(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


SNAPSHOTS = [
    (paid_with_refund_pending, "paid_with_refund_pending.snapshot.json"),
    (qr_awaiting_payer, "qr_awaiting_payer.snapshot.json"),
    (at_an_office, "at_an_office.snapshot.json"),
]


@pytest.mark.parametrize(("build", "name"), SNAPSHOTS)
def test_the_snapshot_is_written_byte_for_byte_as_before(build: Any, name: str) -> None:
    order, _ = build()
    assert encode_order(order.to_record()) == golden(name)


@pytest.mark.parametrize(("build", "name"), SNAPSHOTS)
def test_a_stored_snapshot_round_trips_byte_for_byte(build: Any, name: str) -> None:
    stored = golden(name)
    record = decode_order(stored)
    assert encode_order(record) == stored
    assert encode_order(Order.from_record(record).to_record()) == stored
    assert record["order_id"] == build()[0].order_id


def test_the_journal_entries_are_written_and_linked_byte_for_byte_as_before() -> None:
    """The service point's entry (change, order, attempt or refund) linked into the chain:
    the same bytes, so the same hashes."""
    book = OrderBook(cast(GroupCommit, None), ZoneInfo("Asia/Shanghai"), 1000)
    head = chain.Head()
    for build, name in [
        (paid_with_refund_pending, "refund_requested.entry.json"),
        (qr_awaiting_payer, "qr_code_ready.entry.json"),
    ]:
        order, change = build()
        unlinked = book._journal_entry(order, change)
        linked, head = chain.link(unlinked.entry, order.service_point_id, unlinked.day, head,
                                  "actor-1")  # fmt: skip
        assert encode_entry(linked) == golden(name)
        entry = decode_entry(golden(name))
        assert encode_entry(entry) == golden(name)
        assert "chain" in entry and entry["chain"]["hash"] == chain.entry_hash(entry)


def test_the_pending_refund_and_the_follow_up_keep_the_order_open() -> None:
    record = decode_order(golden("paid_with_refund_pending.snapshot.json"))
    assert is_open(record)
    record["refunds"][0]["state"] = "SUCCEEDED"
    assert is_open(record)  # A1 is still under follow-up
    record["attempts"][0]["follow_up"] = False
    assert not is_open(record)
    assert is_open(decode_order(golden("qr_awaiting_payer.snapshot.json")))


def _without(path: tuple[str | int, ...]) -> bytes:
    record = orjson.loads(golden("paid_with_refund_pending.snapshot.json"))
    parent = record
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return orjson.dumps(record)


@pytest.mark.parametrize(
    ("path", "said"),
    [
        (("version",), "the snapshot of order SP01-W01-20260105-000042 lacks version"),
        (("state",), "the snapshot of order SP01-W01-20260105-000042 lacks state"),
        (("order_id",), "the snapshot of order ? lacks order_id"),
        (("lines", 1, "amount_fen"), "a line of order SP01-W01-20260105-000042 lacks amount_fen"),
        (("attempts", 0, "follow_up"), "an attempt of order SP01-W01-20260105-000042 lacks "
                                       "follow_up"),
        (("refunds", 0, "state"), "a refund of order SP01-W01-20260105-000042 lacks state"),
    ],
)  # fmt: skip
def test_a_snapshot_missing_a_required_field_is_refused(
    path: tuple[str | int, ...], said: str
) -> None:
    with pytest.raises(MalformedRecord) as refused:
        decode_order(_without(path))
    assert str(refused.value) == said


def test_what_is_not_a_snapshot_is_refused() -> None:
    with pytest.raises(MalformedRecord, match="not JSON"):
        decode_order(b'{"order_id": ')
    with pytest.raises(MalformedRecord, match="a JSON list, not an object"):
        decode_order(b"[]")
    record = orjson.loads(golden("qr_awaiting_payer.snapshot.json"))
    record["attempts"] = {"Q1": record["attempts"][0]}
    with pytest.raises(MalformedRecord, match=r"the attempts of order SP02-\S+ are not a list"):
        decode_order(orjson.dumps(record))
    with pytest.raises(MalformedRecord, match="a journal entry lacks at, v"):
        decode_entry(b'{"what": "created", "order_state": "AWAITING_PAYMENT"}')


def test_records_from_before_qr_payments_and_creators_are_read_with_their_defaults() -> None:
    record = orjson.loads(golden("paid_with_refund_pending.snapshot.json"))
    del record["created_by"]
    for attempt in record["attempts"]:
        del attempt["mode"], attempt["qr_code_url"], attempt["qr_expires_at"]
    order = Order.from_record(decode_order(orjson.dumps(record)))
    assert order.created_by == ""
    assert [a.mode for a in order.attempts] == [PayMode.PAYER_PRESENTS_CODE] * 2
    assert [a.qr_code_url for a in order.attempts] == ["", ""]


def test_records_from_before_offices_are_read_as_the_implicit_office() -> None:
    for name in ("paid_with_refund_pending.snapshot.json", "qr_awaiting_payer.snapshot.json"):
        record = decode_order(golden(name))
        assert "office_id" not in record and "site_id" not in record
        order = Order.from_record(record)
        assert (order.office_id, order.site_id) == ("", "")


def test_an_order_carries_its_office_and_site_through_its_record() -> None:
    record = decode_order(golden("at_an_office.snapshot.json"))
    assert (record.get("office_id"), record.get("site_id")) == ("QJ", "QJ-QL")
    order = Order.from_record(record)
    assert (order.office_id, order.site_id) == ("QJ", "QJ-QL")

"""The stored records of an order, typed: its snapshot (with its lines, attempts and
refunds) and its journal entries, and the one codec that turns them into bytes and back.

These are the shapes Redis and the record hold, the gRPC messages are built from, and the
audit chain hashes: every writer builds them here (Order.to_record, Change.to_record, the
service point's journal entries) and every reader takes them from `decode_order` /
`decode_entry`, so a field is added in one place and mypy finds every reader of it.

The byte format is orjson's compact encoding of the dicts in the order their keys are
written; it must not change (existing data, the hash chain and the gRPC contract depend
on it). Decoding is one `orjson.loads` plus a check that the required keys are present
(no conversion, no copying): a record missing one is refused with `MalformedRecord`
naming the record and the keys. Values are trusted as the writers made them; the
audit's readers (audit/verify.py, servicepoint/recall.py) read journals they mistrust
on purpose and check each value themselves.
"""

# No `from __future__ import annotations` here: TypedDict learns which keys are
# NotRequired from the annotations themselves, and the decoders check __required_keys__.

from collections.abc import Iterable
from typing import Any, NotRequired, TypedDict, cast

import orjson

from orchestrator.domain.states import needs_attention


class LineRecord(TypedDict):
    fee_code: str
    name: str
    unit: str
    category: str  # FeeCategory's value
    quantity: int
    unit_price_fen: int
    amount_fen: int


class AttemptRecord(TypedDict):
    attempt_id: str
    channel: str  # Channel's value
    state: str  # AttemptState's value
    amount_fen: int
    terminal_id: str
    request_id: str
    created_at: int
    finished_at: int | None
    provider_trade_no: str
    failure_reason: str
    auth_code_masked: str
    cash_received_fen: int
    change_fen: int
    follow_up: bool
    # Written since QR payments exist; records from before carry none of the three.
    mode: NotRequired[str]  # PayMode's value; absent: PAYER_PRESENTS_CODE
    qr_code_url: NotRequired[str]
    qr_expires_at: NotRequired[int | None]


class RefundRecord(TypedDict):
    refund_id: str
    attempt_id: str
    amount_fen: int
    state: str  # RefundState's value
    reason: str
    supervisor_id: str
    terminal_id: str
    request_id: str
    automatic: bool
    created_at: int
    finished_at: int | None
    provider_refund_no: str
    failure_reason: str


class OrderRecord(TypedDict):
    """An order's snapshot at one version."""

    order_id: str
    business_no: str
    service_point_id: str
    window_id: str
    payer_name: str
    lines: list[LineRecord]
    amount_fen: int
    catalog_version: str
    state: str  # OrderState's value
    created_at: int
    expires_at: int
    version: int
    paid_at: int | None
    paid_by: str
    cancel_reason: str
    refunded_fen: int
    attempts: list[AttemptRecord]
    refunds: list[RefundRecord]
    created_by: NotRequired[str]  # written since orders record their creator
    # Its office and site (domain/places.py), written when the deployment declares offices;
    # absent: "" (made before offices existed, or in the one office of a deployment
    # without [[offices]]).
    office_id: NotRequired[str]
    site_id: NotRequired[str]


class EntryOrder(TypedDict):
    """The order as a journal entry states it, for the hash chain."""

    id: str
    business_no: str
    window: str
    state: str
    amount_fen: int
    refunded_fen: int
    payer_sha256: str


class EntryAttempt(TypedDict):
    id: str
    channel: str
    amount_fen: int
    state: str
    terminal: str
    provider_trade_no: str
    cash_received_fen: int
    change_fen: int


class EntryRefund(TypedDict):
    id: str
    attempt: str
    channel: str
    amount_fen: int
    state: str
    supervisor: str
    terminal: str
    automatic: bool
    reason: str
    provider_refund_no: str


class ChainLink(TypedDict):
    """An entry's place in its service point's chain of the day (store/chain.py)."""

    sp: str
    day: str  # YYYY-MM-DD
    n: int
    prev: str
    actor: str
    hash: NotRequired[str]  # absent only while the hash is being taken


class JournalEntry(TypedDict):
    """What happened to an order at one version (Change.to_record), with the facts the
    chain's hash covers and the link, once committed. Entries from before the chain
    carry neither."""

    v: int
    at: int
    what: str
    order_state: str
    attempt_id: NotRequired[str]
    attempt_state: NotRequired[str]
    detail: NotRequired[str]
    refund_id: NotRequired[str]
    supervisor_id: NotRequired[str]  # with terminal_id and amount_fen: a refund's approval
    terminal_id: NotRequired[str]
    amount_fen: NotRequired[int]
    by: NotRequired[str]
    order: NotRequired[EntryOrder]
    lines: NotRequired[list[list[str | int]]]  # when created: [fee_code, qty, unit, amount]
    attempt: NotRequired[EntryAttempt]
    refund: NotRequired[EntryRefund]
    chain: NotRequired[ChainLink]


class MalformedRecord(ValueError):
    """Stored bytes that are not the record they should be: not JSON, not an object, or
    without a key every record of that kind has."""


def _required(kind: type[Any]) -> frozenset[str]:
    keys: frozenset[str] = kind.__required_keys__
    return keys


_ORDER_KEYS = _required(OrderRecord)
_LINE_KEYS = _required(LineRecord)
_ATTEMPT_KEYS = _required(AttemptRecord)
_REFUND_KEYS = _required(RefundRecord)
_ENTRY_KEYS = _required(JournalEntry)


def _loads(data: bytes | bytearray | memoryview | str, what: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise MalformedRecord(f"{what} is not JSON: {error}") from None


def _all_whole(parts: Any, required: frozenset[str]) -> bool:
    return type(parts) is list and all(
        type(part) is dict and required.issubset(part) for part in parts
    )


_PARTS = (
    ("lines", _LINE_KEYS, "a line"),
    ("attempts", _ATTEMPT_KEYS, "an attempt"),
    ("refunds", _REFUND_KEYS, "a refund"),
)


def decode_order(data: bytes | bytearray | memoryview | str) -> OrderRecord:
    """The snapshot in `data` (as Redis, the record or an event holds it); raises
    MalformedRecord if it, a line, an attempt or a refund lacks a required key."""
    value = _loads(data, "an order snapshot")
    if (
        type(value) is dict
        and _ORDER_KEYS.issubset(value)
        and _all_whole(value["lines"], _LINE_KEYS)
        and _all_whole(value["attempts"], _ATTEMPT_KEYS)
        and _all_whole(value["refunds"], _REFUND_KEYS)
    ):
        return cast(OrderRecord, value)
    raise MalformedRecord(_what_is_wrong(value))


def _what_is_wrong(value: Any) -> str:
    """Why a decoded snapshot is refused (only asked once it is)."""
    if not isinstance(value, dict):
        return f"an order snapshot is a JSON {type(value).__name__}, not an object"
    order_id = value.get("order_id", "?")
    if not _ORDER_KEYS.issubset(value):
        missing = ", ".join(sorted(_ORDER_KEYS - value.keys()))
        return f"the snapshot of order {order_id} lacks {missing}"
    for name, required, what in _PARTS:
        if not isinstance(value[name], list):
            return f"the {name} of order {order_id} are not a list"
        for part in value[name]:
            if not isinstance(part, dict):
                return f"{what} of order {order_id} is not an object"
            if not required.issubset(part):
                missing = ", ".join(sorted(required - part.keys()))
                return f"{what} of order {order_id} lacks {missing}"
    raise AssertionError("a whole snapshot was refused")  # pragma: no cover


def decode_orders(snapshots: Iterable[bytes]) -> list[OrderRecord]:
    return [decode_order(snapshot) for snapshot in snapshots]


def encode_order(record: OrderRecord) -> bytes:
    return orjson.dumps(record)


def decode_entry(data: bytes | bytearray | memoryview | str) -> JournalEntry:
    """A journal entry; raises MalformedRecord if it lacks v, at, what or order_state."""
    value = _loads(data, "a journal entry")
    if not value.keys() >= _ENTRY_KEYS:
        missing = ", ".join(sorted(_ENTRY_KEYS - value.keys()))
        raise MalformedRecord(f"a journal entry lacks {missing}")
    return cast(JournalEntry, value)


def encode_entry(entry: JournalEntry) -> bytes:
    return orjson.dumps(entry)


# ---- questions asked of a record without rebuilding the order ---------------------------


def is_open(record: OrderRecord) -> bool:
    """Order.is_open, asked of the snapshot."""
    return needs_attention(
        record["state"],
        ((a["state"], a["follow_up"]) for a in record["attempts"]),
        (r["state"] for r in record["refunds"]),
    )

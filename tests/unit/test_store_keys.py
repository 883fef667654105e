"""The Redis key layout is defined in one module, and its hash tags keep what one script
touches in one Redis Cluster slot."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.store import keys

ROOT = Path(__file__).resolve().parents[2]
KEY_LITERAL = re.compile(r"""["']wp:""")


def test_no_module_but_keys_spells_a_redis_key() -> None:
    sources = [
        path
        for folder in ("orchestrator", "actors", "loadtest")
        for path in (ROOT / folder).rglob("*.py")
        if "generated" not in path.parts
    ]
    spelled = [
        str(path.relative_to(ROOT))
        for path in sources
        if path != ROOT / "orchestrator/store/keys.py" and KEY_LITERAL.search(path.read_text())
    ]
    assert len(sources) > 50
    assert spelled == []


def _tag(key: str) -> str:
    return key[key.index("{") + 1 : key.index("}")]


def test_a_service_points_keys_share_its_hash_tag() -> None:
    sp, order_id = "SP01", "SP01-K2M9XZ4TBA7Q"
    per_point = [
        keys.order(sp, order_id),
        keys.journal(sp, order_id),
        keys.open_orders(sp),
        keys.epoch(sp),
        keys.response(sp, "r1"),
        keys.events(sp),
        keys.outbox(sp),
        keys.changes(sp),
        keys.day(sp, "20260101"),
    ]
    assert {_tag(k) for k in per_point} == {sp}
    assert len(set(per_point)) == len(per_point)


def test_receipt_keys_share_one_hash_tag() -> None:
    receipt_keys = [
        keys.receipt_sequence("C1"),
        keys.receipt_of_order("SP01-A"),
        keys.receipt("C1", "C1:0000000001"),
        keys.RECEIPT_CHANGES,
    ]
    assert {_tag(k) for k in receipt_keys} == {"receipts"}

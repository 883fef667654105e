"""The journal's hash chain as the service-point core builds it (store/chain.py): each
entry of a service point's day linked to the one before, its hash over its content; the
commit refuses a batch linked after a head that is not the stored one (no fork)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from orchestrator.store import chain, keys
from orchestrator.store.memory import MemoryStore
from orchestrator.store.port import CommitRejected
from orchestrator.store.write_batch import WriteBatch
from tests.core_harness import Harness, one, order_of, settled
from tests.support import small_config


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(MemoryStore(), small_config(service_points=1, windows=4))
    yield h
    for core in h.cores:
        await core.stop()
    assert h.fatal == []


def day_entries(store: MemoryStore, sp: str) -> list[dict[str, Any]]:
    """Every journal entry of the service point, in chain order."""
    entries = [
        orjson.loads(e)
        for name, values in store.lists.items()
        if name.startswith(f"wp:{{{sp}}}:j:")
        for e in values
    ]
    return sorted(entries, key=lambda e: (e["chain"]["day"], e["chain"]["n"]))


def assert_chained(entries: list[dict[str, Any]]) -> None:
    prev: dict[str, str] = {}
    for entry in entries:
        link = entry["chain"]
        assert link["prev"] == prev.get(link["day"], chain.GENESIS)
        assert link["hash"] == chain.entry_hash(entry)
        prev[link["day"]] = link["hash"]


async def test_every_entry_is_linked_and_the_head_follows(harness: Harness) -> None:
    core = await harness.core()
    created = [order_of(await one(core, harness.create(w))) for w in (1, 2)]
    await one(core, harness.pay(created[0]["order_id"]))
    paid = await settled(harness, created[0]["order_id"])
    await one(core, harness.refund(paid.order_id, 500))
    await settled(harness, paid.order_id)
    entries = day_entries(harness.store, harness.sp)
    assert [e["chain"]["n"] for e in entries] == list(range(1, len(entries) + 1))
    assert_chained(entries)
    last = entries[-1]["chain"]
    head = harness.store.strings[keys.chain_head(harness.sp, last["day"])]
    assert chain.Head.decode(head) == chain.Head(last["n"], last["hash"])
    created_entry = entries[0]
    assert created_entry["lines"] == [["PLT-AUTO", 1, 10000, 10000], ["DOC-VLIC", 2, 1000, 2000]]
    refund = [e for e in entries if e["what"] == "refund"]
    assert [r["refund"]["state"] for r in refund] == ["PENDING", "SUCCEEDED"]
    assert refund[0]["refund"]["supervisor"] == "S1"


async def test_a_new_incarnation_continues_the_chain(harness: Harness) -> None:
    first = await harness.core()
    order_of(await one(first, harness.create(1)))
    await first.stop()
    second = await harness.core()
    order_of(await one(second, harness.create(2)))
    entries = day_entries(harness.store, harness.sp)
    assert [e["chain"]["n"] for e in entries] == [1, 2]
    assert_chained(entries)
    assert entries[0]["chain"]["actor"] != entries[1]["chain"]["actor"]


def _entry(v: int) -> chain.Unlinked:
    return chain.Unlinked({"v": v, "at": 0, "what": "created", "order_state": "X"}, "2026-12-07")


async def test_a_batch_linked_after_a_stale_head_writes_nothing() -> None:
    store = MemoryStore()
    epoch = await store.take_over("SPX")
    day = ("SPX", "2026-12-07")
    batch = WriteBatch()
    batch.save_order("SPX", "SPX-A", 0, 1, b"a1", [_entry(1)], b"e")
    moved = batch.link({day: chain.Head()}, {"SPX": "SPX/1"})
    await store.commit(batch, {"SPX": epoch})
    # a second writer that still believes the chain is empty would fork it
    fork = WriteBatch()
    fork.save_order("SPX", "SPX-B", 0, 1, b"b1", [_entry(1)], b"e")
    fork.link({day: chain.Head()}, {"SPX": "SPX/1"})
    with pytest.raises(CommitRejected, match="WPCHAIN"):
        await store.commit(fork, {"SPX": epoch})
    assert await store.order("SPX-B") is None
    assert store.strings[keys.chain_head(*day)] == moved[day].encode().encode()


def test_unlinked_entries_cannot_be_committed() -> None:
    batch = WriteBatch()
    batch.save_order("SPX", "SPX-A", 0, 1, b"a1", [_entry(1)], b"e")
    with pytest.raises(ValueError, match="without their links"):
        list(batch.scripts())


def test_the_hash_covers_the_content_and_the_link() -> None:
    linked, head = chain.link({"v": 1, "amount": 100}, "SPX", "2026-12-07", chain.Head(), "a")
    assert head.hash == chain.entry_hash(linked)
    assert chain.entry_hash({**linked, "amount": 101}) != head.hash
    moved = {**linked, "chain": {**linked["chain"], "prev": "1" * 64}}
    assert chain.entry_hash(moved) != head.hash

"""The store as the service-point core sees it: claims and reads sent together before a
decision, one atomic write batch after it, and what a new incarnation needs to take a
service point over. `RedisStore` implements it; `MemoryStore` is the fake for unit tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from orchestrator.store.write_batch import WriteBatch


@dataclass(slots=True)
class Read:
    """One value of a read batch; `value` is filled in when the batch runs."""

    value: bytes | None = None


class ReadBatchPort(Protocol):
    """Reads queued now and answered together by `run`."""

    def claim(self, key: str, value: str, ttl_ms: int | None) -> Read:
        """Take `key` if free: the read holds None if taken now, else the holder's value.
        A claim already held keeps its expiry."""
        ...

    def get(self, key: str) -> Read: ...

    def order(self, order_id: str) -> Read:
        """The order's snapshot, None if the store does not hold it."""
        ...

    async def run(self) -> None: ...


@dataclass(slots=True)
class LiveOrders:
    """What a service point's open set names: the snapshots, and the ids whose snapshot
    the store no longer holds (lost keys: an alarm, never something to skip)."""

    snapshots: list[bytes]
    missing: list[str]


@dataclass(frozen=True, slots=True)
class RecordedOrder:
    """An order as the record last had it, to be put back into the store: its snapshot
    at `version`, its journal (oldest entry first) and, once issued, its receipt
    (code, number, record)."""

    order_id: str
    version: int
    snapshot: bytes
    journal: list[bytes]
    receipt: tuple[str, str, bytes] | None = None


class RecordPort(Protocol):
    """The record as the service-point core sees it: only orders that have left the
    store are read from it."""

    async def recorded_order(self, order_id: str) -> RecordedOrder | None:
        """The record's last version of the order; None if the record never had it.
        Raises if the record cannot be read."""
        ...


class CommitRejected(Exception):
    """The store refused a commit (fenced by a newer actor, or a version conflict)."""


class StorePort(Protocol):
    def read_batch(self) -> ReadBatchPort: ...

    async def commit(self, batch: WriteBatch, epochs: Mapping[str, int]) -> None:
        """Apply the batch, atomically per service point; raises CommitRejected if the
        epoch of a service point is not the store's or an order moved on meanwhile."""
        ...

    async def take_over(self, sp: str) -> int:
        """A new epoch for the service point: older incarnations can no longer commit."""
        ...

    async def open_orders(self, sp: str) -> LiveOrders:
        """The service point's orders that still need the actor."""
        ...

    async def chain_heads(self, days: Sequence[tuple[str, str]]) -> list[bytes | None]:
        """The stored heads ("n hash") of these (service point, day) journal chains,
        None for a chain not begun (store/chain.py)."""
        ...

    async def ask_reload(self, sp: str, order_ids: list[str]) -> None:
        """Ask for these missing open orders to be put back from the record (the drainer
        does it, and removes them from the request)."""
        ...

    async def restore(
        self, order: RecordedOrder, *, open_at: str, retention_ms: int, only_if_open: bool
    ) -> bool:
        """Put an order back from the record, fenced: only while the store does not hold
        its snapshot (and, with `only_if_open`, while the open set still names it), its
        snapshot, journal and indexes in one atomic step. `open_at` is its window if it
        is open (it goes into the open set, kept without expiry), "" if closed (its keys
        then expire after `retention_ms`). Its receipt is put back first, key by key
        where absent. True if this call put the order back, False if the store already
        had it (another reload won) or it is no longer open; either way the order is no
        longer asked for (`ask_reload`)."""
        ...

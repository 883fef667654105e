"""What one group commit writes, merged per service point.

Per service point the batch is a list of operations for `commit.lua` (one atomic script
call per service point per batch), plus plain SETs and fenced releases of global claims.
Any `StorePort` applies it: Redis by running the script, the in-memory fake by
interpreting the same operations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from orchestrator.domain.records import encode_entry
from orchestrator.store import chain, keys

OP_WIDTH = {"S": 5, "J": 3, "H": 4, "D": 3, "R": 4, "A": 3, "X": 6, "C": 4, "P": 3, "K": 5}
"""Operation code -> its length in the operation list, the code included (as commit.lua)."""


@dataclass
class _ServicePointOps:
    keys: list[str] = field(default_factory=list)
    key_index: dict[str, int] = field(default_factory=dict)
    ops: list[str | bytes] = field(default_factory=list)
    snapshots: dict[str, int] = field(default_factory=dict)  # order key -> op position
    # journal entries to link when committed: (op position of the entry, the entry)
    unlinked: list[tuple[int, chain.Unlinked]] = field(default_factory=list)

    def key(self, key: str) -> str:
        index = self.key_index.get(key)
        if index is None:
            self.keys.append(key)
            index = self.key_index[key] = len(self.keys) + 1  # KEYS[1] is the epoch
        return str(index)


class WriteBatch:
    """Everything one group commit writes, merged per service point."""

    def __init__(self) -> None:
        self._sp: dict[str, _ServicePointOps] = {}
        self._releases: list[tuple[str, str]] = []
        self._sets: list[tuple[str, str]] = []
        self.order_ids: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self._sp or self._releases or self._sets)

    def save_order(
        self,
        sp: str,
        order_id: str,
        prev_version: int,
        version: int,
        snapshot: bytes,
        journal: Iterable[bytes | chain.Unlinked],
        event: bytes,
    ) -> None:
        ops = self._ops(sp)
        self.order_ids.add(order_id)
        order_key = keys.order(sp, order_id)
        position = ops.snapshots.get(order_key)
        if position is None:  # first save of this order in the batch: check its version
            ops.snapshots[order_key] = len(ops.ops)
            ops.ops += ["S", ops.key(order_key), str(prev_version or ""), str(version), snapshot]
        else:  # a later save of the same order: keep the first check, write the latest
            ops.ops[position + 3] = str(version)
            ops.ops[position + 4] = snapshot
        journal_key = ops.key(keys.journal(sp, order_id))
        for entry in journal:
            if isinstance(entry, chain.Unlinked):
                ops.unlinked.append((len(ops.ops) + 2, entry))
                entry = b""  # filled in by `link`
            ops.ops += ["J", journal_key, entry]
        ops.ops += ["C", ops.key(keys.changes(sp)), order_id, str(version)]
        ops.ops += ["P", keys.events(sp), event]

    def mark_open(self, sp: str, order_id: str, window_id: str) -> None:
        ops = self._ops(sp)
        ops.ops += ["H", ops.key(keys.open_orders(sp)), order_id, window_id]

    def mark_closed(self, sp: str, order_id: str) -> None:
        ops = self._ops(sp)
        ops.ops += ["D", ops.key(keys.open_orders(sp)), order_id]

    def note_day(self, sp: str, yyyymmdd: str, order_id: str) -> None:
        ops = self._ops(sp)
        ops.ops += ["A", ops.key(keys.day(sp, yyyymmdd)), order_id]

    def emit(self, sp: str, kind: str, at_ms: int, refund_id: str, snapshot: bytes) -> None:
        """A payment event in the service point's outbox, atomically with the change."""
        ops = self._ops(sp)
        ops.ops += ["X", ops.key(keys.outbox(sp)), kind, str(at_ms), refund_id, snapshot]

    def save_response(self, sp: str, request_id: str, value: bytes, ttl_ms: int) -> None:
        ops = self._ops(sp)
        ops.ops += ["R", ops.key(keys.response(sp, request_id)), value, str(ttl_ms)]

    def release(self, key: str, holder: str) -> None:
        """Delete a global claim, only if `holder` still holds it."""
        self._releases.append((key, holder))

    def set(self, key: str, value: str) -> None:
        self._sets.append((key, value))

    def chain_days(self) -> frozenset[tuple[str, str]]:
        """The (service point, day) chains the batch's entries go into."""
        return frozenset((sp, u.day) for sp, ops in self._sp.items() for _, u in ops.unlinked)

    def link(
        self, heads: Mapping[tuple[str, str], chain.Head], actors: Mapping[str, str]
    ) -> dict[tuple[str, str], chain.Head]:
        """Link every staged entry after the heads given, in the order staged, and make
        each service point's script check and move the heads; the new heads."""
        moved: dict[tuple[str, str], chain.Head] = {}
        for sp, ops in self._sp.items():
            for position, unlinked in ops.unlinked:
                which = (sp, unlinked.day)
                head = moved.get(which) or heads[which]
                entry, moved[which] = chain.link(unlinked.entry, sp, unlinked.day, head, actors[sp])
                ops.ops[position] = encode_entry(entry)
            ops.unlinked = []
            for (head_sp, day), head in moved.items():
                if head_sp == sp:
                    ops.ops += [
                        "K", ops.key(keys.chain_head(sp, day)), heads[(sp, day)].encode(),
                        head.encode(), str(chain.HEAD_TTL_MS),
                    ]  # fmt: skip
        return moved

    def scripts(self) -> Iterator[tuple[str, list[str], list[str | bytes]]]:
        """Per service point: (service point, its keys after the epoch's, operations)."""
        for sp, ops in self._sp.items():
            if ops.unlinked:
                raise ValueError(f"journal entries of {sp} committed without their links")
            yield sp, ops.keys, ops.ops

    def sets(self) -> list[tuple[str, str]]:
        return list(self._sets)

    def releases(self) -> list[tuple[str, str]]:
        return list(self._releases)

    def _ops(self, sp: str) -> _ServicePointOps:
        ops = self._sp.get(sp)
        if ops is None:
            ops = self._sp[sp] = _ServicePointOps()
        return ops

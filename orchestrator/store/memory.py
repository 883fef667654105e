"""An in-memory StorePort, shipped for unit tests of the service-point core.

It applies a WriteBatch by interpreting the same operations `commit.lua` runs, with the
same fencing (the epoch) and the same all-or-nothing version check per service point.
Nothing expires here by itself: `expiring` holds the keys given an expiry (as the
drainer does in Redis), and a commit clears it as `commit.lua`'s PERSIST does. Tests
that need keys to vanish use Redis, or delete them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchestrator.domain import ids
from orchestrator.store import keys
from orchestrator.store.port import CommitRejected, LiveOrders, Read, RecordedOrder
from orchestrator.store.write_batch import OP_WIDTH, WriteBatch


class MemoryReadBatch:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._queued: list[tuple[Read, str, str, str | None]] = []  # read, kind, key, value

    def claim(self, key: str, value: str, ttl_ms: int | None) -> Read:
        return self._queue("claim", key, value)

    def get(self, key: str) -> Read:
        return self._queue("get", key, None)

    def order(self, order_id: str) -> Read:
        return self._queue("order", keys.order(ids.service_point_of(order_id), order_id), None)

    async def run(self) -> None:
        strings, hashes = self._store.strings, self._store.hashes
        for read, kind, key, value in self._queued:
            if kind == "order":
                read.value = hashes.get(key, {}).get("s")
                continue
            read.value = strings.get(key)
            if kind == "claim" and read.value is None:
                assert value is not None
                strings[key] = value.encode()
        self._queued = []

    def _queue(self, kind: str, key: str, value: str | None) -> Read:
        read = Read()
        self._queued.append((read, kind, key, value))
        return read


class MemoryStore:
    """Redis's data types as dictionaries: strings, hashes, lists, sets, streams, and
    the messages published, each kept in the order written."""

    def __init__(self) -> None:
        self.strings: dict[str, bytes] = {}
        self.hashes: dict[str, dict[str, bytes]] = {}
        self.lists: dict[str, list[bytes]] = {}
        self.sets: dict[str, set[bytes]] = {}
        self.streams: dict[str, list[dict[str, bytes]]] = {}
        self.published: list[tuple[str, bytes]] = []
        self.expiring: dict[str, int] = {}  # key -> its time to live (ms)
        self.commits = 0

    # ---- the port ---------------------------------------------------------------------

    def read_batch(self) -> MemoryReadBatch:
        return MemoryReadBatch(self)

    async def commit(self, batch: WriteBatch, epochs: Mapping[str, int]) -> None:
        failures = []
        for sp, sp_keys, ops in batch.scripts():
            try:
                self._run_script(sp, sp_keys, ops, epochs.get(sp))
            except CommitRejected as error:
                failures.append(str(error))
        for key, value in batch.sets():
            self.strings[key] = value.encode()
        for key, holder in batch.releases():
            if self.strings.get(key) == holder.encode():
                del self.strings[key]
        self.commits += 1
        if failures:
            raise CommitRejected("; ".join(failures))

    async def take_over(self, sp: str) -> int:
        epoch = int(self.strings.get(keys.epoch(sp), b"0")) + 1
        self.strings[keys.epoch(sp)] = str(epoch).encode()
        return epoch

    async def open_orders(self, sp: str) -> LiveOrders:
        live = LiveOrders([], [])
        for order_id in self.hashes.get(keys.open_orders(sp), {}):
            snapshot = self._snapshot(keys.order(sp, order_id))
            if snapshot is None:
                live.missing.append(order_id)
            else:
                live.snapshots.append(snapshot)
        return live

    async def chain_heads(self, days: Sequence[tuple[str, str]]) -> list[bytes | None]:
        return [self.strings.get(keys.chain_head(sp, day)) for sp, day in days]

    async def ask_reload(self, sp: str, order_ids: list[str]) -> None:
        self.sets.setdefault(keys.missing_orders(sp), set()).update(o.encode() for o in order_ids)

    async def restore(
        self, order: RecordedOrder, *, open_at: str, retention_ms: int, only_if_open: bool
    ) -> bool:
        """restore.lua, in Python (and the receipt keys, each only if absent)."""
        if order.receipt is not None:
            code, number, record = order.receipt
            for key, value in (
                (keys.receipt_of_order(order.order_id), f"{code}:{number}".encode()),
                (keys.receipt(code, number), record),
            ):
                if key not in self.strings:
                    self.strings[key] = value
                    self.expiring[key] = retention_ms
        sp = ids.service_point_of(order.order_id)
        order_key, journal_key = keys.order(sp, order.order_id), keys.journal(sp, order.order_id)
        open_set = self.hashes.setdefault(keys.open_orders(sp), {})
        self.sets.get(keys.missing_orders(sp), set()).discard(order.order_id.encode())
        if order_key in self.hashes or (only_if_open and order.order_id not in open_set):
            return False
        self.hashes[order_key] = {"v": str(order.version).encode(), "s": order.snapshot}
        self.lists[journal_key] = list(order.journal)
        if open_at:
            open_set[order.order_id] = open_at.encode()
        else:
            self.expiring.update({order_key: retention_ms, journal_key: retention_ms})
        return True

    # ---- what tests look at ------------------------------------------------------------

    async def order(self, order_id: str) -> bytes | None:
        try:
            sp = ids.service_point_of(order_id)
        except ids.MalformedOrderId:
            return None  # as RedisStore answers: no such order
        return self._snapshot(keys.order(sp, order_id))

    async def journal(self, order_id: str) -> list[bytes]:
        return list(self.lists.get(keys.journal(ids.service_point_of(order_id), order_id), []))

    # ---- commit.lua, in Python ----------------------------------------------------------

    def _snapshot(self, order_key: str) -> bytes | None:
        return self.hashes.get(order_key, {}).get("s")

    def _run_script(
        self, sp: str, sp_keys: list[str], ops: list[str | bytes], epoch: int | None
    ) -> None:
        if self.strings.get(keys.epoch(sp)) != str(epoch).encode():
            raise CommitRejected("WPFENCED another actor took this service point over")
        names = [keys.epoch(sp), *sp_keys]

        def key(position: int) -> str:
            return names[int(_text(ops[position])) - 1]

        steps = []
        i = 0
        while i < len(ops):
            op = _text(ops[i])
            if op not in OP_WIDTH:
                raise CommitRejected(f"WPBADOP {op}")
            steps.append(i)
            if op == "S":
                stored = self.hashes.get(key(i + 1), {}).get("v", b"")
                if stored != _bytes(ops[i + 2]):
                    raise CommitRejected(
                        f"WPCONFLICT {key(i + 1)} is at version {stored!r}, "
                        f"expected {_text(ops[i + 2])}"
                    )
            elif op == "K":
                head = self.strings.get(key(i + 1), b"")
                if head != _bytes(ops[i + 2]):
                    raise CommitRejected(
                        f"WPCHAIN {key(i + 1)} is at {head.decode()!r}, "
                        f"expected {_text(ops[i + 2])!r}"
                    )
            i += OP_WIDTH[op]
        for i in steps:
            op, args = _text(ops[i]), [_bytes(a) for a in ops[i + 1 : i + OP_WIDTH[_text(ops[i])]]]
            if op == "P":
                self.published.append((args[0].decode(), args[1]))
            else:
                self._apply(op, key(i + 1), args[1:])

    def _apply(self, op: str, target: str, args: list[bytes]) -> None:
        if op == "S":
            self.hashes.setdefault(target, {}).update({"v": args[1], "s": args[2]})
            self.expiring.pop(target, None)
        elif op == "J":
            self.lists.setdefault(target, []).append(args[0])
            self.expiring.pop(target, None)
        elif op == "H":
            self.hashes.setdefault(target, {})[args[0].decode()] = args[1]
        elif op == "D":
            self.hashes.get(target, {}).pop(args[0].decode(), None)
        elif op == "R":
            self.strings[target] = args[0]
        elif op == "A":
            self.sets.setdefault(target, set()).add(args[0])
        elif op == "X":
            entry = {"kind": args[0], "at": args[1], "refund": args[2], "order": args[3]}
            self.streams.setdefault(target, []).append(entry)
        elif op == "C":
            self.streams.setdefault(target, []).append({"o": args[0], "v": args[1]})
        elif op == "K":
            self.strings[target] = args[1]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value

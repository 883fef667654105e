"""Orders that have left the store, recalled from the record when a command needs one.

A closed order's keys leave Redis after the retention (docs/RECORD.md). A refund, or a
late success's refund, may come weeks later: the core then asks the record for the
order and puts it back into the store (`StorePort.restore`: fenced, so that of two
reloads of the same order only one writes), then reads it from the store like any
other order. From there the command runs through the same handlers and checks as for
an order that never left. Its journal goes on from the record's last version.

Within one actor, concurrent commands naming the same order share one recall; across
processes the store's fence decides. `from_the_record` is the step of the core's batch
pipeline that asks for them.

The snapshot is not trusted on its own: before putting it back, the recall recomputes the
hash of each of the order's journal entries, checks that their versions run 1..v without
a gap, and holds the snapshot against the entries (`record_mismatch`). An order whose
snapshot says anything the chain does not (a refund dropped, an attempt's channel
changed) is refused with FAILED_PRECONDITION and nothing is put back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from orchestrator.domain.errors import FailedPrecondition, Unavailable
from orchestrator.domain.order import Order
from orchestrator.domain.records import decode_order, is_open
from orchestrator.servicepoint.group_commit import GroupCommit
from orchestrator.servicepoint.job import Job, value_of
from orchestrator.servicepoint.observer import CoreObserver
from orchestrator.servicepoint.orders import OrderBook
from orchestrator.store.chain import entry_hash
from orchestrator.store.port import Read, RecordedOrder, RecordPort, StorePort

log = logging.getLogger(__name__)


class RecordUnavailable(Unavailable):
    """The order has left the store and the record cannot be read: ask again later."""

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"order {order_id} has left the live store and the record cannot be read right "
            "now; retry with the same request_id"
        )


class RecordMismatch(FailedPrecondition):
    """The record's snapshot of an order disagrees with its hashed journal: someone
    changed the record. Nothing is put back; an auditor must look."""

    def __init__(self, order_id: str, problem: str) -> None:
        super().__init__(
            f"order {order_id} cannot be recalled: its record disagrees with its journal "
            f"({problem}); ask an auditor to run windowpay audit verify"
        )


def record_mismatch(recorded: RecordedOrder) -> str:
    """What the recorded snapshot says that the order's hashed journal does not ("" when
    they agree). Each entry's hash is recomputed; versions must run 1..v; the snapshot's
    version, amounts and state must be those of the last entry, and each attempt's and
    refund's amount, state (and channel) those of the last entry naming it."""
    try:
        snapshot = orjson.loads(recorded.snapshot)
        entries = [orjson.loads(raw) for raw in recorded.journal]
    except orjson.JSONDecodeError:
        return "unreadable snapshot or journal entry"
    if not isinstance(snapshot, dict) or not entries:
        return "no journal"
    attempts: dict[str, Mapping[str, Any]] = {}
    refunds: dict[str, Mapping[str, Any]] = {}
    for version, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("chain"), dict):
            return f"journal entry {version} has no link"
        if entry.get("v") != version:
            return f"journal entry {version} has version {entry.get('v')!r}"
        if entry["chain"].get("hash") != entry_hash(entry):
            return f"journal entry {version} does not match its hash"
        if isinstance(entry.get("attempt"), dict):
            attempts[str(entry["attempt"].get("id"))] = entry["attempt"]
        if isinstance(entry.get("refund"), dict):
            refunds[str(entry["refund"].get("id"))] = entry["refund"]
    last = entries[-1]
    said = last.get("order") if isinstance(last.get("order"), dict) else {}
    differences = []
    if snapshot.get("version") != len(entries) or recorded.version != len(entries):
        differences.append(
            f"version {recorded.version} (snapshot {snapshot.get('version')!r}), "
            f"the journal's last is {len(entries)}"
        )
    for field in ("amount_fen", "refunded_fen", "state"):
        if snapshot.get(field) != said.get(field):
            differences.append(
                f"{field} {snapshot.get(field)!r}, the journal says {said.get(field)!r}"
            )
    differences += _named(snapshot.get("attempts"), "attempt_id", attempts, ("channel",))
    differences += _named(snapshot.get("refunds"), "refund_id", refunds, ())
    return "; ".join(differences)


def _named(
    items: Any, key: str, said: dict[str, Mapping[str, Any]], fields: tuple[str, ...]
) -> list[str]:
    """How the snapshot's attempts or refunds differ from the last entries naming them."""
    kind = key.removesuffix("_id")
    if not isinstance(items, list):
        return [f"no {kind}s"]
    differences = []
    seen = set()
    for item in items:
        item_id = str(item.get(key)) if isinstance(item, dict) else "?"
        seen.add(item_id)
        entry = said.get(item_id)
        if entry is None:
            differences.append(f"{kind} {item_id} is in no journal entry")
            continue
        for field in ("amount_fen", "state", *fields):
            if item.get(field) != entry.get(field):
                differences.append(
                    f"{kind} {item_id} {field} {item.get(field)!r}, "
                    f"the journal says {entry.get(field)!r}"
                )
    differences += [f"{kind} {missing} of the journal is missing" for missing in said.keys() - seen]
    return differences


class OrderRecall:
    def __init__(
        self,
        store: StorePort,
        record: RecordPort | None,
        retention_ms: int,
        observer: CoreObserver,
    ) -> None:
        self._store = store
        self._record = record
        self._retention_ms = retention_ms
        self._observer = observer
        self._recalling: dict[str, asyncio.Task[None]] = {}

    async def recall(self, order_id: str) -> Read:
        """The order's snapshot as the store holds it once the record's copy is back
        (None if neither has it). Raises RecordUnavailable if the record cannot answer."""
        if self._record is None:
            return Read()
        task = self._recalling.get(order_id)
        if task is None:
            task = asyncio.create_task(self._put_back(self._record, order_id))
            self._recalling[order_id] = task
            task.add_done_callback(lambda _: self._recalling.pop(order_id, None))
        await asyncio.shield(task)
        reads = self._store.read_batch()
        read = reads.order(order_id)
        await reads.run()
        return read

    async def _put_back(self, record: RecordPort, order_id: str) -> None:
        try:
            recorded = await record.recorded_order(order_id)
        except Exception as error:  # the record's driver, pool or network: ask again later
            self._observer.recalled("record_unavailable")
            log.warning("cannot read order %s from the record: %s", order_id, error)
            raise RecordUnavailable(order_id) from error
        if recorded is None:
            self._observer.recalled("not_in_record")
            return
        problem = record_mismatch(recorded)
        if problem:
            self._observer.recalled("record_mismatch")
            log.error(
                "order %s not recalled: its record disagrees with its journal: %s",
                order_id,
                problem,
                extra={"order_id": order_id},
            )
            raise RecordMismatch(order_id, problem)
        order = decode_order(recorded.snapshot)
        won = await self._store.restore(
            recorded,
            open_at=order["window_id"] if is_open(order) else "",
            retention_ms=self._retention_ms,
            only_if_open=False,
        )
        self._observer.recalled("recalled" if won else "already_back")
        log.info(
            "order %s %s from the record at version %d (%s)",
            order_id,
            "put back into the store" if won else "was already back in the store",
            recorded.version,
            order["state"],
            extra={"order_id": order_id},
        )


async def from_the_record(
    jobs: list[Job],
    recall: OrderRecall,
    book: OrderBook,
    commit: GroupCommit,
    resume: Callable[[Order], int],
) -> None:
    """Between a batch's read and its decisions: orders the store no longer holds
    (closed, past the retention) are forgotten here too, and recalled from the record
    for a command whose handler recalls (a refund, a late success's refund), so that
    the command decides on the order as it was last."""
    wanted: dict[str, list[Job]] = {}
    for job in jobs:
        if job.order is None or job.order.value is not None:
            continue
        order_id = job.order_id
        if not commit.unflushed(order_id):
            book.recent.pop(order_id, None)  # gone from the store: stale here
        if (
            job.recalls
            and value_of(job.response) is None
            and value_of(job.claim) in (None, job.fingerprint.encode())
            and book.find(order_id) is None
            and order_id not in book.missing
        ):
            wanted.setdefault(order_id, []).append(job)
    if not wanted:
        return
    answers = await asyncio.gather(
        *(recall.recall(order_id) for order_id in wanted), return_exceptions=True
    )
    for (order_id, waiting), answer in zip(wanted.items(), answers, strict=True):
        if isinstance(answer, RecordUnavailable | RecordMismatch):
            for job in waiting:
                job.refused = answer
            continue
        if isinstance(answer, BaseException):
            raise answer
        for job in waiting:
            job.order = answer
        if answer.value is not None:
            order = Order.from_record(decode_order(answer.value))
            if order.is_open and book.find(order_id) is None:
                # The record had it open (Redis had lost it): in our care again.
                book.open[order_id] = order
                resume(order)

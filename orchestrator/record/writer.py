"""Idempotent writes into the record. An order row is replaced only by a newer version
of it (and its lines, attempts and refunds with it); journal entries, payment events and
receipts are keyed by what identifies them. Writing a batch twice, or an older batch
after a newer one, leaves the record as it was.

The tables are partitioned by business day (partitions.py): every key includes the
row's day, which the writer derives from what never changes (the order's creation, the
event's time, the receipt's issue), so a row written again lands on itself. The days of
a page are given partitions before it is written, whatever their age."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any

import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from orchestrator.domain.calendar import local_day
from orchestrator.domain.records import JournalEntry, OrderRecord
from orchestrator.record.partitions import Partitions

Record = Mapping[str, Any]  # a receipt's record


@dataclass(frozen=True, slots=True)
class DrainedOrder:
    snapshot: OrderRecord
    journal: Sequence[JournalEntry]


@dataclass(frozen=True, slots=True)
class DrainedEvent:
    event_id: str
    kind: str
    at_ms: int
    refund_id: str
    order_id: str
    order_version: int


# Each statement takes its rows as one array per column (`unnest`): a page is one
# statement per table, whatever its size, instead of one per row. The arrays go in
# binary (`%b`): psycopg dumps them six times faster than as text.

_ORDER = """
INSERT INTO orders (order_id, version, service_point_id, window_id, business_no, payer_name,
    amount_fen, state, catalog_version, created_at_ms, created_day, paid_at_ms, paid_day,
    paid_by, paid_channel, refunded_fen, snapshot, office_id, site_id)
SELECT * FROM unnest(%b::text[], %b::int[], %b::text[], %b::text[], %b::text[], %b::text[],
    %b::bigint[], %b::text[], %b::text[], %b::bigint[], %b::date[], %b::bigint[], %b::date[],
    %b::text[], %b::text[], %b::bigint[], %b::jsonb[], %b::text[], %b::text[])
ON CONFLICT (order_id, created_day) DO UPDATE SET
    version = EXCLUDED.version, state = EXCLUDED.state, paid_at_ms = EXCLUDED.paid_at_ms,
    paid_day = EXCLUDED.paid_day, paid_by = EXCLUDED.paid_by,
    paid_channel = EXCLUDED.paid_channel, refunded_fen = EXCLUDED.refunded_fen,
    snapshot = EXCLUDED.snapshot, drained_at = now()
WHERE orders.version < EXCLUDED.version
RETURNING order_id
"""

_LINE = """
INSERT INTO order_lines (order_id, line_no, fee_code, name, unit, category, quantity,
    unit_price_fen, amount_fen, order_day)
SELECT * FROM unnest(%b::text[], %b::smallint[], %b::text[], %b::text[], %b::text[],
    %b::text[], %b::int[], %b::bigint[], %b::bigint[], %b::date[])
ON CONFLICT DO NOTHING
"""

_ATTEMPT = """
INSERT INTO attempts (attempt_id, order_id, channel, state, amount_fen, terminal_id,
    request_id, created_at_ms, finished_at_ms, finished_day, provider_trade_no,
    failure_reason, follow_up, order_day)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[],
    %b::text[], %b::text[], %b::bigint[], %b::bigint[], %b::date[], %b::text[], %b::text[],
    %b::boolean[], %b::date[])
ON CONFLICT (attempt_id, order_day) DO UPDATE SET
    state = EXCLUDED.state, finished_at_ms = EXCLUDED.finished_at_ms,
    finished_day = EXCLUDED.finished_day, provider_trade_no = EXCLUDED.provider_trade_no,
    failure_reason = EXCLUDED.failure_reason, follow_up = EXCLUDED.follow_up
"""

_REFUND = """
INSERT INTO refunds (refund_id, order_id, attempt_id, amount_fen, state, reason,
    supervisor_id, terminal_id, automatic, created_at_ms, finished_at_ms, finished_day,
    provider_refund_no, failure_reason, order_day)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[], %b::text[],
    %b::text[], %b::text[], %b::text[], %b::boolean[], %b::bigint[], %b::bigint[],
    %b::date[], %b::text[], %b::text[], %b::date[])
ON CONFLICT (refund_id, order_day) DO UPDATE SET
    state = EXCLUDED.state, finished_at_ms = EXCLUDED.finished_at_ms,
    finished_day = EXCLUDED.finished_day, provider_refund_no = EXCLUDED.provider_refund_no,
    failure_reason = EXCLUDED.failure_reason
"""

# An entry's link (store/chain.py) goes in columns beside it, for finding and ordering a
# day's chain; entries from before the chain have none.
_JOURNAL = """
INSERT INTO journal (order_id, version, at_ms, what, order_state, entry, order_day,
    service_point_id, chain_day, chain_seq, prev_hash, entry_hash)
SELECT * FROM unnest(%b::text[], %b::int[], %b::bigint[], %b::text[], %b::text[],
    %b::jsonb[], %b::date[], %b::text[], %b::date[], %b::bigint[], %b::text[], %b::text[])
ON CONFLICT DO NOTHING
"""

_EVENT = """
INSERT INTO payment_events (event_id, service_point_id, kind, at_ms, refund_id, order_id,
    order_version, day)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[], %b::text[],
    %b::text[], %b::int[], %b::date[])
ON CONFLICT DO NOTHING
"""

_RECEIPT = """
INSERT INTO receipts (receipt_code, receipt_no, order_id, status, total_fen, refunded_fen,
    issued_at_ms, record, issued_day)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[],
    %b::bigint[], %b::bigint[], %b::jsonb[], %b::date[])
ON CONFLICT (receipt_code, receipt_no, issued_day) DO UPDATE SET
    status = EXCLUDED.status, refunded_fen = EXCLUDED.refunded_fen, record = EXCLUDED.record
WHERE receipts.refunded_fen <= EXCLUDED.refunded_fen
"""

# Which order days had a payment or refund finish on a day: the reports by day read it
# first and then touch only those days' partitions.
_MOVEMENT = """
INSERT INTO movement_days (day, order_day)
SELECT * FROM unnest(%b::date[], %b::date[])
ON CONFLICT DO NOTHING
"""


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column: the arrays the statements unnest."""
    return [list(column) for column in zip(*rows, strict=True)]


def _jsonb(value: Record | OrderRecord | JournalEntry) -> Jsonb:
    return Jsonb(value if isinstance(value, dict) else dict(value), dumps=orjson.dumps)


class RecordWriter:
    def __init__(self, zone: tzinfo) -> None:
        self._zone = zone
        self.partitions = Partitions()

    def _day(self, ms: int | None) -> date | None:
        return None if ms is None else local_day(ms, self._zone).date()

    def day(self, ms: int) -> date:
        return local_day(ms, self._zone).date()

    async def write(
        self,
        conn: AsyncConnection[Any],
        orders: Sequence[DrainedOrder],
        events: Sequence[DrainedEvent] = (),
        receipts: Sequence[Record] = (),
    ) -> None:
        """Everything in one transaction: all of it is in the record, or none."""
        days = {self.day(o.snapshot["created_at"]) for o in orders}
        days.update(self.day(e.at_ms) for e in events)
        days.update(self.day(r["issued_at"]) for r in receipts)
        try:
            await self.partitions.ensure(conn, days)
            try:
                await self._write(conn, orders, events, receipts)
            except psycopg.errors.CheckViolation:
                # "no partition for the row": a day it knew went to the archive since
                self.partitions.forget()
                await self.partitions.ensure(conn, days)
                await self._write(conn, orders, events, receipts)
        except BaseException:
            self.partitions.forget()
            raise

    async def _write(
        self,
        conn: AsyncConnection[Any],
        orders: Sequence[DrainedOrder],
        events: Sequence[DrainedEvent],
        receipts: Sequence[Record],
    ) -> None:
        async with conn.transaction(), conn.cursor() as cur:
            newer = await self._orders(cur, sorted(orders, key=lambda o: o.snapshot["order_id"]))
            fresh = [o.snapshot for o in orders if o.snapshot["order_id"] in newer]
            await self._children(cur, fresh)
            journal = [
                (
                    o.snapshot["order_id"], e["v"], e["at"], e["what"], e["order_state"],
                    _jsonb(e), self.day(o.snapshot["created_at"]), *_link(e),
                )
                for o in orders
                for e in o.journal
            ]  # fmt: skip
            await _insert(cur, _JOURNAL, journal)
            await _insert(cur, _EVENT, [
                (
                    e.event_id, e.event_id.split("-", 1)[0], e.kind, e.at_ms, e.refund_id,
                    e.order_id, e.order_version, self.day(e.at_ms),
                )
                for e in events
            ])  # fmt: skip
            await _insert(cur, _RECEIPT, [
                (
                    r["receipt_code"], r["receipt_no"], r["order_id"], r["status"],
                    r["total_fen"], r["refunded_fen"], r["issued_at"], _jsonb(r),
                    self.day(r["issued_at"]),
                )
                for r in receipts
            ])  # fmt: skip

    async def _orders(self, cur: Any, orders: Sequence[DrainedOrder]) -> set[str]:
        """Upsert the order rows; the ids of those that were new or older in the record."""
        if not orders:
            return set()
        rows = []
        for drained in orders:
            o = drained.snapshot
            paying = next((a for a in o["attempts"] if a["attempt_id"] == o["paid_by"]), None)
            rows.append((
                o["order_id"], o["version"], o["service_point_id"], o["window_id"],
                o["business_no"], o["payer_name"], o["amount_fen"], o["state"],
                o["catalog_version"], o["created_at"], self.day(o["created_at"]), o["paid_at"],
                self._day(o["paid_at"]), o["paid_by"], paying["channel"] if paying else None,
                o["refunded_fen"], _jsonb(o), o.get("office_id", ""), o.get("site_id", ""),
            ))  # fmt: skip
        await cur.execute(_ORDER, _columns(rows))
        return {order_id for (order_id,) in await cur.fetchall()}

    async def _children(self, cur: Any, orders: Sequence[OrderRecord]) -> None:
        lines, attempts, refunds = [], [], []
        moved: set[tuple[date, date]] = set()  # (day finished, order's day)
        for o in orders:
            oid, day = o["order_id"], self.day(o["created_at"])
            for n, line in enumerate(o["lines"]):
                lines.append((
                    oid, n, line["fee_code"], line["name"], line["unit"], line["category"],
                    line["quantity"], line["unit_price_fen"], line["amount_fen"], day,
                ))  # fmt: skip
            for a in o["attempts"]:
                finished = self._day(a["finished_at"])
                attempts.append((
                    a["attempt_id"], oid, a["channel"], a["state"], a["amount_fen"],
                    a["terminal_id"], a["request_id"], a["created_at"], a["finished_at"],
                    finished, a["provider_trade_no"], a["failure_reason"], a["follow_up"], day,
                ))  # fmt: skip
                if finished is not None:
                    moved.add((finished, day))
            for r in o["refunds"]:
                finished = self._day(r["finished_at"])
                refunds.append((
                    r["refund_id"], oid, r["attempt_id"], r["amount_fen"], r["state"],
                    r["reason"], r["supervisor_id"], r["terminal_id"], r["automatic"],
                    r["created_at"], r["finished_at"], finished,
                    r["provider_refund_no"], r["failure_reason"], day,
                ))  # fmt: skip
                if finished is not None:
                    moved.add((finished, day))
        for sql, rows in ((_LINE, lines), (_ATTEMPT, attempts), (_REFUND, refunds)):
            await _insert(cur, sql, rows)
        await _insert(cur, _MOVEMENT, sorted(moved))


def _link(
    entry: JournalEntry,
) -> tuple[str | None, date | None, int | None, str | None, str | None]:
    link = entry.get("chain")
    if link is None:
        return None, None, None, None, None
    day = date.fromisoformat(link["day"])
    return link["sp"], day, link["n"], link["prev"], link["hash"]


async def _insert(cur: Any, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        await cur.execute(sql, _columns(rows))

"""Idempotent writes into the record. An order row is replaced only by a newer version
of it (and its lines, attempts and refunds with it); journal entries, payment events and
receipts are keyed by what identifies them. Writing a batch twice, or an older batch
after a newer one, leaves the record as it was."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from orchestrator.domain.calendar import local_day

Record = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DrainedOrder:
    snapshot: Record
    journal: Sequence[Record]


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
    paid_by, paid_channel, refunded_fen, snapshot)
SELECT * FROM unnest(%b::text[], %b::int[], %b::text[], %b::text[], %b::text[], %b::text[],
    %b::bigint[], %b::text[], %b::text[], %b::bigint[], %b::date[], %b::bigint[], %b::date[],
    %b::text[], %b::text[], %b::bigint[], %b::jsonb[])
ON CONFLICT (order_id) DO UPDATE SET
    version = EXCLUDED.version, state = EXCLUDED.state, paid_at_ms = EXCLUDED.paid_at_ms,
    paid_day = EXCLUDED.paid_day, paid_by = EXCLUDED.paid_by,
    paid_channel = EXCLUDED.paid_channel, refunded_fen = EXCLUDED.refunded_fen,
    snapshot = EXCLUDED.snapshot, drained_at = now()
WHERE orders.version < EXCLUDED.version
RETURNING order_id
"""

_LINE = """
INSERT INTO order_lines (order_id, line_no, fee_code, name, unit, category, quantity,
    unit_price_fen, amount_fen)
SELECT * FROM unnest(%b::text[], %b::smallint[], %b::text[], %b::text[], %b::text[],
    %b::text[], %b::int[], %b::bigint[], %b::bigint[])
ON CONFLICT DO NOTHING
"""

_ATTEMPT = """
INSERT INTO attempts (attempt_id, order_id, channel, state, amount_fen, terminal_id,
    request_id, created_at_ms, finished_at_ms, finished_day, provider_trade_no,
    failure_reason, follow_up)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[],
    %b::text[], %b::text[], %b::bigint[], %b::bigint[], %b::date[], %b::text[], %b::text[],
    %b::boolean[])
ON CONFLICT (attempt_id) DO UPDATE SET
    state = EXCLUDED.state, finished_at_ms = EXCLUDED.finished_at_ms,
    finished_day = EXCLUDED.finished_day, provider_trade_no = EXCLUDED.provider_trade_no,
    failure_reason = EXCLUDED.failure_reason, follow_up = EXCLUDED.follow_up
"""

_REFUND = """
INSERT INTO refunds (refund_id, order_id, attempt_id, amount_fen, state, reason,
    supervisor_id, terminal_id, automatic, created_at_ms, finished_at_ms, finished_day,
    provider_refund_no, failure_reason)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[], %b::text[],
    %b::text[], %b::text[], %b::text[], %b::boolean[], %b::bigint[], %b::bigint[],
    %b::date[], %b::text[], %b::text[])
ON CONFLICT (refund_id) DO UPDATE SET
    state = EXCLUDED.state, finished_at_ms = EXCLUDED.finished_at_ms,
    finished_day = EXCLUDED.finished_day, provider_refund_no = EXCLUDED.provider_refund_no,
    failure_reason = EXCLUDED.failure_reason
"""

# An entry's link (store/chain.py) goes in columns beside it, for finding and ordering a
# day's chain; entries from before the chain have none.
_JOURNAL = """
INSERT INTO journal (order_id, version, at_ms, what, order_state, entry, service_point_id,
    chain_day, chain_seq, prev_hash, entry_hash)
SELECT * FROM unnest(%b::text[], %b::int[], %b::bigint[], %b::text[], %b::text[],
    %b::jsonb[], %b::text[], %b::date[], %b::bigint[], %b::text[], %b::text[])
ON CONFLICT DO NOTHING
"""

_EVENT = """
INSERT INTO payment_events (event_id, service_point_id, kind, at_ms, refund_id, order_id,
    order_version)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[], %b::text[],
    %b::text[], %b::int[])
ON CONFLICT DO NOTHING
"""

_RECEIPT = """
INSERT INTO receipts (receipt_code, receipt_no, order_id, status, total_fen, refunded_fen,
    issued_at_ms, record)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[],
    %b::bigint[], %b::bigint[], %b::jsonb[])
ON CONFLICT (receipt_code, receipt_no) DO UPDATE SET
    status = EXCLUDED.status, refunded_fen = EXCLUDED.refunded_fen, record = EXCLUDED.record
WHERE receipts.refunded_fen <= EXCLUDED.refunded_fen
"""


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column: the arrays the statements unnest."""
    return [list(column) for column in zip(*rows, strict=True)]


def _jsonb(value: Record) -> Jsonb:
    return Jsonb(value if isinstance(value, dict) else dict(value), dumps=orjson.dumps)


class RecordWriter:
    def __init__(self, zone: tzinfo) -> None:
        self._zone = zone

    def _day(self, ms: int | None) -> date | None:
        return None if ms is None else local_day(ms, self._zone).date()

    async def write(
        self,
        conn: AsyncConnection[Any],
        orders: Sequence[DrainedOrder],
        events: Sequence[DrainedEvent] = (),
        receipts: Sequence[Record] = (),
    ) -> None:
        """Everything in one transaction: all of it is in the record, or none."""
        async with conn.transaction(), conn.cursor() as cur:
            newer = await self._orders(cur, sorted(orders, key=lambda o: o.snapshot["order_id"]))
            fresh = [o.snapshot for o in orders if o.snapshot["order_id"] in newer]
            await self._children(cur, fresh)
            journal = [
                (
                    o.snapshot["order_id"], e["v"], e["at"], e["what"], e["order_state"],
                    _jsonb(e), *_link(e),
                )
                for o in orders
                for e in o.journal
            ]  # fmt: skip
            await _insert(cur, _JOURNAL, journal)
            await _insert(cur, _EVENT, [
                (
                    e.event_id, e.event_id.split("-", 1)[0], e.kind, e.at_ms, e.refund_id,
                    e.order_id, e.order_version,
                )
                for e in events
            ])  # fmt: skip
            await _insert(cur, _RECEIPT, [
                (
                    r["receipt_code"], r["receipt_no"], r["order_id"], r["status"],
                    r["total_fen"], r["refunded_fen"], r["issued_at"], _jsonb(r),
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
                o["catalog_version"], o["created_at"], self._day(o["created_at"]), o["paid_at"],
                self._day(o["paid_at"]), o["paid_by"], paying["channel"] if paying else None,
                o["refunded_fen"], _jsonb(o),
            ))  # fmt: skip
        await cur.execute(_ORDER, _columns(rows))
        return {order_id for (order_id,) in await cur.fetchall()}

    async def _children(self, cur: Any, orders: Sequence[Record]) -> None:
        lines, attempts, refunds = [], [], []
        for o in orders:
            oid = o["order_id"]
            for n, line in enumerate(o["lines"]):
                lines.append((
                    oid, n, line["fee_code"], line["name"], line["unit"], line["category"],
                    line["quantity"], line["unit_price_fen"], line["amount_fen"],
                ))  # fmt: skip
            for a in o["attempts"]:
                attempts.append((
                    a["attempt_id"], oid, a["channel"], a["state"], a["amount_fen"],
                    a["terminal_id"], a["request_id"], a["created_at"], a["finished_at"],
                    self._day(a["finished_at"]), a["provider_trade_no"], a["failure_reason"],
                    a["follow_up"],
                ))  # fmt: skip
            for r in o["refunds"]:
                refunds.append((
                    r["refund_id"], oid, r["attempt_id"], r["amount_fen"], r["state"],
                    r["reason"], r["supervisor_id"], r["terminal_id"], r["automatic"],
                    r["created_at"], r["finished_at"], self._day(r["finished_at"]),
                    r["provider_refund_no"], r["failure_reason"],
                ))  # fmt: skip
        for sql, rows in ((_LINE, lines), (_ATTEMPT, attempts), (_REFUND, refunds)):
            await _insert(cur, sql, rows)


def _link(entry: Record) -> tuple[str | None, date | None, int | None, str | None, str | None]:
    link = entry.get("chain")
    if link is None:
        return None, None, None, None, None
    day = date.fromisoformat(link["day"])
    return link["sp"], day, link["n"], link["prev"], link["hash"]


async def _insert(cur: Any, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        await cur.execute(sql, _columns(rows))

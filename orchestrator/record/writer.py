"""Idempotent writes into the record. An order row is replaced only by a newer version
of it (and its lines, attempts and refunds with it); journal entries, payment events and
receipts are keyed by what identifies them. Writing a batch twice, or an older batch
after a newer one, leaves the record as it was."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any

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


_ORDER = """
INSERT INTO orders (order_id, version, service_point_id, window_id, business_no, payer_name,
    amount_fen, state, catalog_version, created_at_ms, created_day, paid_at_ms, paid_day,
    paid_by, paid_channel, refunded_fen, snapshot)
VALUES (%(order_id)s, %(version)s, %(service_point_id)s, %(window_id)s, %(business_no)s,
    %(payer_name)s, %(amount_fen)s, %(state)s, %(catalog_version)s, %(created_at)s,
    %(created_day)s, %(paid_at)s, %(paid_day)s, %(paid_by)s, %(paid_channel)s,
    %(refunded_fen)s, %(snapshot)s)
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
VALUES (%(order_id)s, %(line_no)s, %(fee_code)s, %(name)s, %(unit)s, %(category)s,
    %(quantity)s, %(unit_price_fen)s, %(amount_fen)s)
ON CONFLICT DO NOTHING
"""

_ATTEMPT = """
INSERT INTO attempts (attempt_id, order_id, channel, state, amount_fen, terminal_id,
    request_id, created_at_ms, finished_at_ms, finished_day, provider_trade_no,
    failure_reason, follow_up)
VALUES (%(attempt_id)s, %(order_id)s, %(channel)s, %(state)s, %(amount_fen)s,
    %(terminal_id)s, %(request_id)s, %(created_at)s, %(finished_at)s, %(finished_day)s,
    %(provider_trade_no)s, %(failure_reason)s, %(follow_up)s)
ON CONFLICT (attempt_id) DO UPDATE SET
    state = EXCLUDED.state, finished_at_ms = EXCLUDED.finished_at_ms,
    finished_day = EXCLUDED.finished_day, provider_trade_no = EXCLUDED.provider_trade_no,
    failure_reason = EXCLUDED.failure_reason, follow_up = EXCLUDED.follow_up
"""

_REFUND = """
INSERT INTO refunds (refund_id, order_id, attempt_id, amount_fen, state, reason,
    supervisor_id, terminal_id, automatic, created_at_ms, finished_at_ms, finished_day,
    provider_refund_no, failure_reason)
VALUES (%(refund_id)s, %(order_id)s, %(attempt_id)s, %(amount_fen)s, %(state)s, %(reason)s,
    %(supervisor_id)s, %(terminal_id)s, %(automatic)s, %(created_at)s, %(finished_at)s,
    %(finished_day)s, %(provider_refund_no)s, %(failure_reason)s)
ON CONFLICT (refund_id) DO UPDATE SET
    state = EXCLUDED.state, finished_at_ms = EXCLUDED.finished_at_ms,
    finished_day = EXCLUDED.finished_day, provider_refund_no = EXCLUDED.provider_refund_no,
    failure_reason = EXCLUDED.failure_reason
"""

_JOURNAL = """
INSERT INTO journal (order_id, version, at_ms, what, order_state, entry)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""

_EVENT = """
INSERT INTO payment_events (event_id, service_point_id, kind, at_ms, refund_id, order_id,
    order_version)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""

_RECEIPT = """
INSERT INTO receipts (receipt_code, receipt_no, order_id, status, total_fen, refunded_fen,
    issued_at_ms, record)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (receipt_code, receipt_no) DO UPDATE SET
    status = EXCLUDED.status, refunded_fen = EXCLUDED.refunded_fen, record = EXCLUDED.record
WHERE receipts.refunded_fen <= EXCLUDED.refunded_fen
"""


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
                (o.snapshot["order_id"], e["v"], e["at"], e["what"], e["order_state"], Jsonb(e))
                for o in orders
                for e in o.journal
            ]
            if journal:
                await cur.executemany(_JOURNAL, journal)
            if events:
                await cur.executemany(
                    _EVENT,
                    [
                        (
                            e.event_id, e.event_id.split("-", 1)[0], e.kind, e.at_ms,
                            e.refund_id, e.order_id, e.order_version,
                        )
                        for e in events
                    ],
                )  # fmt: skip
            if receipts:
                await cur.executemany(
                    _RECEIPT,
                    [
                        (
                            r["receipt_code"], r["receipt_no"], r["order_id"], r["status"],
                            r["total_fen"], r["refunded_fen"], r["issued_at"], Jsonb(dict(r)),
                        )
                        for r in receipts
                    ],
                )  # fmt: skip

    async def _orders(self, cur: Any, orders: Sequence[DrainedOrder]) -> set[str]:
        """Upsert the order rows; the ids of those that were new or older in the record."""
        if not orders:
            return set()
        rows = []
        for drained in orders:
            o = drained.snapshot
            paying = next((a for a in o["attempts"] if a["attempt_id"] == o["paid_by"]), None)
            rows.append(
                {
                    **{k: o[k] for k in _ORDER_FIELDS},
                    "created_day": self._day(o["created_at"]),
                    "paid_day": self._day(o["paid_at"]),
                    "paid_channel": paying["channel"] if paying else None,
                    "snapshot": Jsonb(dict(o)),
                }
            )
        await cur.executemany(_ORDER, rows, returning=True)
        newer: set[str] = set()
        async for result in cur.results():
            newer.update(order_id for (order_id,) in await result.fetchall())
        return newer

    async def _children(self, cur: Any, orders: Sequence[Record]) -> None:
        lines, attempts, refunds = [], [], []
        for o in orders:
            oid = o["order_id"]
            for n, line in enumerate(o["lines"]):
                lines.append({**line, "order_id": oid, "line_no": n})
            for a in o["attempts"]:
                attempts.append({**a, "order_id": oid, "finished_day": self._day(a["finished_at"])})
            for r in o["refunds"]:
                refunds.append({**r, "order_id": oid, "finished_day": self._day(r["finished_at"])})
        for sql, rows in ((_LINE, lines), (_ATTEMPT, attempts), (_REFUND, refunds)):
            if rows:
                await cur.executemany(sql, rows)


_ORDER_FIELDS = (
    "order_id", "version", "service_point_id", "window_id", "business_no", "payer_name",
    "amount_fen", "state", "catalog_version", "created_at", "paid_at", "paid_by",
    "refunded_fen",
)  # fmt: skip

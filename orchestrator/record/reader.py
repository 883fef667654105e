"""Reads from the record: orders and receipts that Redis no longer holds, the orders of
business days for settlement and reconciliation, and the statistics of `windowpay
report`. Snapshots come back as the same JSON bytes Redis holds.

The tables are partitioned by business day (partitions.py). A read by day first asks
`movement_days` which order days had payments or refunds finish on the days wanted,
then names those days, so PostgreSQL plans only their partitions. A read by order id,
case or receipt number cannot know the day: it looks in each partition's index, and in
the archive's when the record has nothing. Reads by day also look in the archive
(`windowpay record archive`), where the same tables hold the days moved there; a day
is in one place or the other, never both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
from psycopg_pool import AsyncConnectionPool

from orchestrator.record.partitions import ARCHIVE, MAIN
from orchestrator.store.port import RecordedOrder

# What a report can be grouped by, and the column each means in the payments query
# (p: the payment or refund, o: its order) and in the fee-item query (l: the line).
DIMENSIONS = {
    "day": "p.day",
    "office": "o.office_id",
    "site": "o.site_id",
    "service_point": "o.service_point_id",
    "window": "o.window_id",
    "channel": "p.channel",
    "fee_item": "l.fee_code",
}

_MOVEMENTS = """
    SELECT a.order_id, a.order_day, a.finished_day AS day, a.channel, 1 AS payments,
           a.amount_fen AS payments_fen, 0 AS refunds, 0 AS refunds_fen
    FROM attempts a
    WHERE a.state = 'SUCCEEDED' AND a.finished_day BETWEEN %(first)s AND %(last)s
      AND a.order_day = ANY(%(order_days)s)
    UNION ALL
    SELECT r.order_id, r.order_day, r.finished_day, a.channel, 0, 0, 1, r.amount_fen
    FROM refunds r JOIN attempts a ON a.attempt_id = r.attempt_id AND a.order_day = r.order_day
    WHERE r.state = 'SUCCEEDED' AND NOT r.automatic
      AND r.finished_day BETWEEN %(first)s AND %(last)s
      AND r.order_day = ANY(%(order_days)s) AND a.order_day = ANY(%(order_days)s)
"""
# The order days whose payments or refunds finished on the days asked (orders' own
# partitions then say nothing more than this).
ORDER_DAYS = "SELECT array_agg(DISTINCT order_day) FROM movement_days WHERE day BETWEEN %s AND %s"

ORDERS_OF_DAYS = """
    SELECT o.order_id, o.snapshot::text FROM orders o
    WHERE o.service_point_id = ANY(%(sp)s) AND o.created_day = ANY(%(order_days)s)
      AND (o.order_id, o.created_day) IN (
        SELECT order_id, created_day FROM orders WHERE created_day = ANY(%(days)s)
        UNION SELECT order_id, order_day FROM attempts
              WHERE finished_day = ANY(%(days)s) AND order_day = ANY(%(order_days)s)
        UNION SELECT order_id, order_day FROM refunds
              WHERE finished_day = ANY(%(days)s) AND order_day = ANY(%(order_days)s))
"""


# An office's orders: those stamped with it, and those written before orders carried
# their office ('') whose service point is the office's now (docs/OFFICES.md).
_OF_OFFICE = """
    AND (o.office_id = %(office)s
         OR (o.office_id = '' AND o.service_point_id = ANY(%(office_points)s)))
"""


@dataclass(frozen=True, slots=True)
class OfficeFilter:
    """One office: its id, and the service points it holds today."""

    office_id: str
    service_points: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReportRow:
    key: dict[str, str]
    payments: int
    payments_fen: int
    refunds: int
    refunds_fen: int

    @property
    def net_fen(self) -> int:
        return self.payments_fen - self.refunds_fen


class RecordReader:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def _rows(
        self, sql: str, params: Any = None, schema: str = MAIN
    ) -> list[tuple[Any, ...]]:
        async with self._pool.connection() as conn, conn.cursor() as cur:
            if schema == MAIN:
                await cur.execute(sql, params)
                rows: list[tuple[Any, ...]] = await cur.fetchall()
                return rows
            async with conn.transaction():
                await cur.execute(f"SET LOCAL search_path TO {schema}, {MAIN}")
                await cur.execute(sql, params)
                archived: list[tuple[Any, ...]] = await cur.fetchall()
                return archived

    async def _everywhere(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        """The rows of the record's days, then those of the archive's."""
        return [*await self._rows(sql, params), *await self._rows(sql, params, ARCHIVE)]

    async def order_days(self, first: date, last: date) -> list[date]:
        """The days of the orders with a payment or refund finished in first..last."""
        rows = await self._rows(ORDER_DAYS, (first, last))
        days: list[date] = rows[0][0] or []
        return days

    async def _first(self, sql: str, params: Any) -> bytes | None:
        """The first row's text from the record, else from the archive."""
        rows = await self._rows(sql, params) or await self._rows(sql, params, ARCHIVE)
        return rows[0][0].encode() if rows else None

    async def recorded_order(self, order_id: str) -> RecordedOrder | None:
        """The order as the record last had it, to be put back into Redis: its snapshot,
        its journal (oldest first) and its receipt, each re-encoded as Redis holds them
        (compact JSON). One connection, one snapshot of the database."""
        async with (
            self._pool.connection(timeout=5.0) as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = None
            for schema in (MAIN, ARCHIVE):  # an order of an archived day is refunded too
                if schema != MAIN:
                    await cur.execute(f"SET LOCAL search_path TO {schema}, {MAIN}")
                await cur.execute(
                    "SELECT version, snapshot FROM orders WHERE order_id = %s", (order_id,)
                )
                row = await cur.fetchone()
                if row is not None:
                    break
            if row is None:
                return None
            version, snapshot = row
            await cur.execute(
                "SELECT entry FROM journal WHERE order_id = %s ORDER BY version", (order_id,)
            )
            journal = [orjson.dumps(entry) for (entry,) in await cur.fetchall()]
            await cur.execute(
                "SELECT receipt_code, receipt_no, record FROM receipts WHERE order_id = %s "
                "ORDER BY issued_at_ms LIMIT 1",
                (order_id,),
            )
            receipt = await cur.fetchone()
        return RecordedOrder(
            order_id,
            int(version),
            orjson.dumps(snapshot),
            journal,
            (receipt[0], receipt[1], orjson.dumps(receipt[2])) if receipt else None,
        )

    async def order(self, order_id: str) -> bytes | None:
        return await self._first(
            "SELECT snapshot::text FROM orders WHERE order_id = %s", (order_id,)
        )

    async def order_of_case(self, business_no: str) -> bytes | None:
        return await self._first(
            "SELECT snapshot::text FROM orders WHERE business_no = %s "
            "ORDER BY created_at_ms DESC LIMIT 1",
            (business_no,),
        )

    async def versions(self, order_ids: Sequence[str]) -> dict[str, int]:
        rows = await self._rows(
            "SELECT order_id, version FROM orders WHERE order_id = ANY(%s)", (list(order_ids),)
        )
        return {order_id: version for order_id, version in rows}

    async def orders_of_days(
        self, service_points: Sequence[str], days: Sequence[date]
    ) -> list[bytes]:
        """Snapshots of the orders created, paid or refunded on any of the local days."""
        order_days = set(days)
        for day in days:
            order_days.update(await self.order_days(day, day))
        rows = await self._everywhere(
            ORDERS_OF_DAYS,
            {"sp": list(service_points), "days": list(days), "order_days": sorted(order_days)},
        )
        return [snapshot.encode() for _, snapshot in sorted(rows)]

    async def receipt_of_order(self, order_id: str) -> bytes | None:
        return await self._first(
            "SELECT record::text FROM receipts WHERE order_id = %s ORDER BY issued_at_ms LIMIT 1",
            (order_id,),
        )

    async def receipt(self, code: str, number: str) -> bytes | None:
        return await self._first(
            "SELECT record::text FROM receipts WHERE receipt_code = %s AND receipt_no = %s",
            (code, number),
        )

    async def report(
        self, first: date, last: date, by: Sequence[str], office: OfficeFilter | None = None
    ) -> list[ReportRow]:
        """Totals over the local days first..last, grouped by the named dimensions, of
        one office's orders or of all. Payments and refunds are counted on the day they
        succeeded; automatic refunds of late successes are left out (they were never the
        window's takings). Grouped by fee item, the totals are what the paid orders'
        lines came to (an order's refund is not split over its items)."""
        unknown = [d for d in by if d not in DIMENSIONS]
        if unknown:
            raise ValueError(f"cannot group by {', '.join(unknown)}; use {', '.join(DIMENSIONS)}")
        columns = [DIMENSIONS[d] for d in by]
        select = ", ".join(f"{c}::text" for c in columns) or "'all'"
        group = f"GROUP BY {', '.join(columns)} ORDER BY {', '.join(columns)}" if columns else ""
        of_office = _OF_OFFICE if office is not None else ""
        if "fee_item" in by:
            sql = f"""
                SELECT {select}, count(DISTINCT o.order_id), sum(l.amount_fen), 0, 0
                FROM ({_MOVEMENTS}) p
                JOIN orders o ON o.order_id = p.order_id AND o.created_day = p.order_day
                JOIN order_lines l ON l.order_id = p.order_id AND l.order_day = p.order_day
                WHERE p.payments = 1 AND o.created_day = ANY(%(order_days)s)
                  AND l.order_day = ANY(%(order_days)s) {of_office} {group}
            """  # the columns come from DIMENSIONS only, never from the caller
        else:
            sql = f"""
                SELECT {select}, sum(p.payments), sum(p.payments_fen), sum(p.refunds),
                       sum(p.refunds_fen)
                FROM ({_MOVEMENTS}) p
                JOIN orders o ON o.order_id = p.order_id AND o.created_day = p.order_day
                WHERE o.created_day = ANY(%(order_days)s) {of_office} {group}
            """
        order_days = await self.order_days(first, last)
        params = {"first": first, "last": last, "order_days": order_days}
        if office is not None:
            params.update(office=office.office_id, office_points=list(office.service_points))
        rows = await self._everywhere(sql, params)
        width = max(len(by), 1)
        # A group may have rows in the record and in the archive: add them up.
        sums: dict[tuple[Any, ...], list[int]] = {}
        for row in rows:
            if row[width] is None:
                continue
            total = sums.setdefault(tuple(row[:width]), [0, 0, 0, 0])
            for i in range(4):
                total[i] += int(row[width + i] or 0)
        return [
            ReportRow(dict(zip(by or ["total"], key, strict=True)), *total)
            for key, total in sorted(sums.items())
        ]

"""The record's tables by business day: one partition per table and day (declarative
range partitioning), made ahead of time and on demand, and detached to the archive.

Every row of an order (the order, its lines, attempts, refunds and journal) is in the
partition of the day the order was made: that day never changes, so an upsert always
finds the row it replaces, and an order goes to the archive whole. Payment events are
in the partition of their own day, receipts in that of the day they were issued.

A partition is made as a plain table with a CHECK constraint saying its day, then
attached: attaching takes a lock that lets the parent's readers and writers go on, and
the constraint spares PostgreSQL a scan whenever the table is attached again. The
archive is the schema `record_archive`, with the same partitioned tables: a day is
detached from the record and attached there, where the same queries read it (search
path `record_archive`). A row arriving for an archived day (a refund of an old order)
brings that day's partitions back into the record first: nothing is ever kept twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from psycopg import AsyncConnection

log = logging.getLogger(__name__)

MAIN = "public"
ARCHIVE = "record_archive"
# Each partitioned table and the day it is partitioned by.
TABLES = {
    "orders": "created_day",
    "order_lines": "order_day",
    "attempts": "order_day",
    "refunds": "order_day",
    "journal": "order_day",
    "payment_events": "day",
    "receipts": "issued_day",
}
DAYS_AHEAD = 3  # partitions made ahead of today, so a new day never waits for one
_LOCK = 7263813  # advisory lock of the partitions' DDL (migrate.py holds 7263811)


def partition_name(table: str, day: date) -> str:
    return f"{table}_{day:%Y%m%d}"


def _bounds(day: date) -> str:
    return f"FROM ('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')"


def create_statements(table: str, day: date) -> list[str]:
    """Make the day's partition of the table in the record (nothing there yet)."""
    name, column = partition_name(table, day), TABLES[table]
    after = day + timedelta(days=1)
    return [
        f"CREATE TABLE {MAIN}.{name} (LIKE {MAIN}.{table} INCLUDING DEFAULTS, "
        f"CONSTRAINT {name}_day CHECK ({column} >= '{day.isoformat()}' "
        f"AND {column} < '{after.isoformat()}'))",
        f"ALTER TABLE {MAIN}.{table} ATTACH PARTITION {MAIN}.{name} FOR VALUES {_bounds(day)}",
    ]


def move_statements(table: str, day: date, source: str, target: str) -> list[str]:
    """Detach the day's partition from `source`'s table, attach it to `target`'s."""
    name = partition_name(table, day)
    return [
        f"ALTER TABLE {source}.{table} DETACH PARTITION {source}.{name}",
        f"ALTER TABLE {source}.{name} SET SCHEMA {target}",
        f"ALTER TABLE {target}.{table} ATTACH PARTITION {target}.{name} FOR VALUES {_bounds(day)}",
    ]


_WHERE = """
    SELECT n.nspname, c.relname FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
    WHERE pn.nspname = n.nspname AND c.relname = ANY(%s)
"""


@dataclass(frozen=True, slots=True)
class Archived:
    day: date
    rows: dict[str, int]  # table -> rows moved


class Partitions:
    """Which days the record has partitions for, and making them. Holds the days it
    knows to be attached, so that a page of the drainer costs no catalogue query."""

    def __init__(self) -> None:
        self._attached: set[date] = set()

    def forget(self) -> None:
        """After a failed write: a day may have been archived meanwhile."""
        self._attached.clear()

    async def ensure(self, conn: AsyncConnection[Any], days: Iterable[date]) -> list[date]:
        """Every table has a partition in the record for each day: made, or brought back
        from the archive. The days that were not there before."""
        wanted = sorted(set(days) - self._attached)
        if not wanted:
            return []
        added: list[date] = []
        async with conn.transaction(), conn.cursor() as cur:
            await cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            where = await _where(cur, wanted)
            for day in wanted:
                for table in TABLES:
                    schema = where.get(partition_name(table, day))
                    if schema == MAIN:
                        continue
                    if schema == ARCHIVE:
                        statements = move_statements(table, day, ARCHIVE, MAIN)
                        log.warning("record: %s of %s brought back from the archive", table, day)
                    else:
                        statements = create_statements(table, day)
                    for statement in statements:
                        await cur.execute(statement)
                    if day not in added:
                        added.append(day)
        self._attached.update(wanted)
        return added

    def knows_ahead(self, today: date, ahead: int = DAYS_AHEAD) -> bool:
        return all(day in self._attached for day in _ahead(today, ahead))

    async def ensure_ahead(
        self, conn: AsyncConnection[Any], today: date, ahead: int = DAYS_AHEAD
    ) -> list[date]:
        """Yesterday, today and `ahead` days after (yesterday: a change of just before
        midnight, drained after it)."""
        return await self.ensure(conn, _ahead(today, ahead))


def _ahead(today: date, ahead: int) -> list[date]:
    return [today + timedelta(days=n) for n in range(-1, ahead + 1)]


async def _where(cur: Any, days: Iterable[date]) -> dict[str, str]:
    """Partition name -> the schema where it is attached, for the days' partitions."""
    names = [partition_name(t, d) for d in days for t in TABLES]
    await cur.execute(_WHERE, (names,))
    return {name: schema for schema, name in await cur.fetchall()}


async def attached_days(conn: AsyncConnection[Any], schema: str = MAIN) -> list[date]:
    """The days whose order partition is attached in the schema, oldest first."""
    cur = await conn.execute(
        """
        SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = %s AND p.relname = 'orders'
        """,
        (schema,),
    )
    days = [date.fromisoformat(bound.split("'")[1]) for (bound,) in await cur.fetchall()]
    return sorted(days)


async def archive(
    conn: AsyncConnection[Any],
    before: date,
    progress: Callable[[Archived], None] | None = None,
) -> list[Archived]:
    """Detach every day before `before` from the record and attach it to the archive,
    one day per transaction, oldest first. Days already archived are left as they are,
    so running it again does nothing more. On a connection in autocommit mode: each
    day is committed as it is done."""
    if not conn.autocommit:
        raise ValueError("archive needs a connection in autocommit mode")
    done: list[Archived] = []
    for day in [d for d in await attached_days(conn) if d < before]:
        async with conn.transaction(), conn.cursor() as cur:
            await cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            # Detaching waits for the parent's readers and writers: give up rather than
            # hold everyone behind a long report (run the command again later).
            await cur.execute("SET LOCAL lock_timeout = '10s'")
            where = await _where(cur, [day])
            rows: dict[str, int] = {}
            for table in TABLES:
                name = partition_name(table, day)
                if where.get(name) != MAIN:
                    continue
                await cur.execute(f"SELECT count(*) FROM {MAIN}.{name}")
                row = await cur.fetchone()
                rows[table] = int(row[0]) if row else 0
                for statement in move_statements(table, day, MAIN, ARCHIVE):
                    await cur.execute(statement)
        outcome = Archived(day, rows)
        done.append(outcome)
        if progress is not None:
            progress(outcome)
    return done

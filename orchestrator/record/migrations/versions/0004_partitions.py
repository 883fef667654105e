"""The record's big tables partitioned by business day (orchestrator/record/partitions.py
says which day each is partitioned by, and why).

The rows of a record made before (0002's plain tables) are kept: the plain tables are
set aside in a schema of their own, the partitioned ones made in their place, with
every column the plain ones have (whichever migration added it), a partition for every
day the rows name, the rows copied, counted, and only then the plain tables dropped.
The order's day goes onto its lines, attempts, refunds and journal; a payment event's
and a receipt's own day is that of its time in the deployment's zone
(`migrate.upgrade(zone=...)`), as the writer computes it.

`movement_days` says which order days had a payment or refund finish on a day: what
the reports by day read first, to touch only those partitions. The schema
`record_archive` holds the same partitioned tables, for the days `windowpay record
archive` moves there.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from datetime import date

import sqlalchemy as sa
from alembic import context, op

from orchestrator.record.partitions import ARCHIVE, TABLES, create_statements

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OLD = "record_0002"  # where the plain tables wait while their rows are copied

# Each table's new key: a primary key must include the partition key.
_KEYS = {
    "orders": "order_id, created_day",
    "order_lines": "order_id, line_no, order_day",
    "attempts": "attempt_id, order_day",
    "refunds": "refund_id, order_day",
    "journal": "order_id, version, order_day",
    "payment_events": "event_id, day",
    "receipts": "receipt_code, receipt_no, issued_day",
}
_INDEXES = [
    "CREATE INDEX orders_business_no ON orders (business_no)",
    "CREATE INDEX orders_paid_day ON orders (paid_day, service_point_id)",
    "CREATE INDEX attempts_order ON attempts (order_id)",
    "CREATE INDEX attempts_finished_day ON attempts (finished_day, state)",
    "CREATE INDEX refunds_order ON refunds (order_id)",
    "CREATE INDEX payment_events_order ON payment_events (order_id)",
    "CREATE INDEX receipts_order ON receipts (order_id)",
    "CREATE INDEX journal_chain ON journal (chain_day, service_point_id, chain_seq)",
    """CREATE TABLE movement_days (
        day date NOT NULL, order_day date NOT NULL, PRIMARY KEY (day, order_day)
    )""",
]


def _partitioned(table: str) -> str:
    """The table as it was (every column, whichever migration added it), the day of its
    partition added after them (orders have theirs), partitioned by that day."""
    column = TABLES[table]
    day = "" if table == "orders" else f", {column} date NOT NULL"
    return (
        f"CREATE TABLE {table} (LIKE {OLD}.{table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
        f"{day}, PRIMARY KEY ({_KEYS[table]})) PARTITION BY RANGE ({column})"
    )


_LOCAL_DAY = "(to_timestamp({ms} / 1000.0) AT TIME ZONE :zone)::date"
# For each table: the old rows (FROM), and the day of each (its partition); an order's
# lines, attempts, refunds and journal take the order's.
_BY_ORDER = f"JOIN {OLD}.orders o USING (order_id)"
_COPY = {
    "orders": (f"{OLD}.orders x", "x.created_day"),
    "order_lines": (f"{OLD}.order_lines x {_BY_ORDER}", "o.created_day"),
    "attempts": (f"{OLD}.attempts x {_BY_ORDER}", "o.created_day"),
    "refunds": (f"{OLD}.refunds x {_BY_ORDER}", "o.created_day"),
    "journal": (f"{OLD}.journal x {_BY_ORDER}", "o.created_day"),
    "payment_events": (f"{OLD}.payment_events x", _LOCAL_DAY.format(ms="x.at_ms")),
    "receipts": (f"{OLD}.receipts x", _LOCAL_DAY.format(ms="x.issued_at_ms")),
}


def upgrade() -> None:
    zone = context.config.attributes.get("zone", "Asia/Shanghai")
    bind = op.get_bind()
    op.execute(f"CREATE SCHEMA {OLD}")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET SCHEMA {OLD}")
    for table in TABLES:
        op.execute(_partitioned(table))
    for statement in _INDEXES:
        op.execute(statement)
    op.execute(f"CREATE SCHEMA {ARCHIVE}")
    for table, column in TABLES.items():
        op.execute(
            f"CREATE TABLE {ARCHIVE}.{table} (LIKE public.{table} INCLUDING ALL) "
            f"PARTITION BY RANGE ({column})"
        )
    days: set[date] = set()
    for source, day in _COPY.values():
        found = bind.execute(sa.text(f"SELECT DISTINCT {day} FROM {source}"), {"zone": zone})
        days.update(d for (d,) in found)
    for d in sorted(days):
        for table in TABLES:
            for statement in create_statements(table, d):
                op.execute(statement)
    for table, (source, day) in _COPY.items():
        columns = "x.*" if table == "orders" else f"x.*, {day}"
        copied = bind.execute(
            sa.text(f"INSERT INTO {table} SELECT {columns} FROM {source}"), {"zone": zone}
        ).rowcount
        held = bind.execute(sa.text(f"SELECT count(*) FROM {OLD}.{table}")).scalar_one()
        if copied != held:
            raise RuntimeError(
                f"{table}: {held} rows in the plain table, only {copied} could be given a day "
                "(rows of an order the record does not have?): nothing was changed"
            )
    op.execute(
        """INSERT INTO movement_days
           SELECT finished_day, order_day FROM attempts WHERE finished_day IS NOT NULL
           UNION SELECT finished_day, order_day FROM refunds WHERE finished_day IS NOT NULL"""
    )
    op.execute(f"DROP SCHEMA {OLD} CASCADE")


def downgrade() -> None:
    raise NotImplementedError(
        "0004 cannot be undone in place: restore the database from a backup taken before it"
    )

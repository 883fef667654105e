"""The record's big tables partitioned by business day (orchestrator/record/partitions.py
says which day each is partitioned by, and why).

The rows of a record made before (0002's plain tables) are kept: the plain tables are
set aside in a schema of their own, the partitioned ones made in their place with a
partition for every day the rows name, the rows copied, counted, and only then the
plain tables dropped. The order's day goes onto its lines, attempts, refunds and
journal; a payment event's and a receipt's own day is that of its time in the
deployment's zone (`migrate.upgrade(zone=...)`), as the writer computes it.

`movement_days` says which order days had a payment or refund finish on a day: what
the reports by day read first, to touch only those partitions. The schema
`record_archive` holds the same partitioned tables, for the days `windowpay record
archive` moves there.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-07
"""

from datetime import date

import sqlalchemy as sa
from alembic import context, op

from orchestrator.record.partitions import ARCHIVE, TABLES, create_statements

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

OLD = "record_0002"  # where the plain tables wait while their rows are copied

_TABLES = [
    """CREATE TABLE orders (
        order_id text NOT NULL, version integer NOT NULL, service_point_id text NOT NULL,
        window_id text NOT NULL, business_no text NOT NULL, payer_name text NOT NULL,
        amount_fen bigint NOT NULL, state text NOT NULL, catalog_version text NOT NULL,
        created_at_ms bigint NOT NULL, created_day date NOT NULL, paid_at_ms bigint,
        paid_day date, paid_by text NOT NULL, paid_channel text, refunded_fen bigint NOT NULL,
        snapshot jsonb NOT NULL, drained_at timestamptz DEFAULT now(),
        PRIMARY KEY (order_id, created_day)
    ) PARTITION BY RANGE (created_day)""",
    "CREATE INDEX orders_business_no ON orders (business_no)",
    "CREATE INDEX orders_paid_day ON orders (paid_day, service_point_id)",
    """CREATE TABLE order_lines (
        order_id text NOT NULL, line_no smallint NOT NULL, fee_code text NOT NULL,
        name text NOT NULL, unit text NOT NULL, category text NOT NULL,
        quantity integer NOT NULL, unit_price_fen bigint NOT NULL, amount_fen bigint NOT NULL,
        order_day date NOT NULL,
        PRIMARY KEY (order_id, line_no, order_day)
    ) PARTITION BY RANGE (order_day)""",
    """CREATE TABLE attempts (
        attempt_id text NOT NULL, order_id text NOT NULL, channel text NOT NULL,
        state text NOT NULL, amount_fen bigint NOT NULL, terminal_id text NOT NULL,
        request_id text NOT NULL, created_at_ms bigint NOT NULL, finished_at_ms bigint,
        finished_day date, provider_trade_no text NOT NULL, failure_reason text NOT NULL,
        follow_up boolean NOT NULL, order_day date NOT NULL,
        PRIMARY KEY (attempt_id, order_day)
    ) PARTITION BY RANGE (order_day)""",
    "CREATE INDEX attempts_order ON attempts (order_id)",
    "CREATE INDEX attempts_finished_day ON attempts (finished_day, state)",
    """CREATE TABLE refunds (
        refund_id text NOT NULL, order_id text NOT NULL, attempt_id text NOT NULL,
        amount_fen bigint NOT NULL, state text NOT NULL, reason text NOT NULL,
        supervisor_id text NOT NULL, terminal_id text NOT NULL, automatic boolean NOT NULL,
        created_at_ms bigint NOT NULL, finished_at_ms bigint, finished_day date,
        provider_refund_no text NOT NULL, failure_reason text NOT NULL,
        order_day date NOT NULL,
        PRIMARY KEY (refund_id, order_day)
    ) PARTITION BY RANGE (order_day)""",
    "CREATE INDEX refunds_order ON refunds (order_id)",
    """CREATE TABLE journal (
        order_id text NOT NULL, version integer NOT NULL, at_ms bigint NOT NULL,
        what text NOT NULL, order_state text NOT NULL, entry jsonb NOT NULL,
        order_day date NOT NULL,
        PRIMARY KEY (order_id, version, order_day)
    ) PARTITION BY RANGE (order_day)""",
    """CREATE TABLE payment_events (
        event_id text NOT NULL, service_point_id text NOT NULL, kind text NOT NULL,
        at_ms bigint NOT NULL, refund_id text NOT NULL, order_id text NOT NULL,
        order_version integer NOT NULL, day date NOT NULL,
        PRIMARY KEY (event_id, day)
    ) PARTITION BY RANGE (day)""",
    "CREATE INDEX payment_events_order ON payment_events (order_id)",
    """CREATE TABLE receipts (
        receipt_code text NOT NULL, receipt_no text NOT NULL, order_id text NOT NULL,
        status text NOT NULL, total_fen bigint NOT NULL, refunded_fen bigint NOT NULL,
        issued_at_ms bigint NOT NULL, record jsonb NOT NULL, issued_day date NOT NULL,
        PRIMARY KEY (receipt_code, receipt_no, issued_day)
    ) PARTITION BY RANGE (issued_day)""",
    "CREATE INDEX receipts_order ON receipts (order_id)",
    """CREATE TABLE movement_days (
        day date NOT NULL, order_day date NOT NULL, PRIMARY KEY (day, order_day)
    )""",
]

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
    for statement in _TABLES:
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

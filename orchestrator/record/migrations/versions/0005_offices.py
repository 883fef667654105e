"""Each order's office and site (docs/OFFICES.md) as columns of the record, so that the
record can be asked by office.

Both are '' for the rows written before (and for the orders of a deployment of one
implicit office); `windowpay report --office` reads such a row as its service point's
office today. The columns are added to the record's and the archive's orders alike
(record_archive, 0004), so that a day's partition still attaches to either. A constant
default makes adding them a change of the catalogue only; the index is built over every
partition, which takes a while on a large record.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from alembic import op

from orchestrator.record.partitions import ARCHIVE, MAIN

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for schema in (MAIN, ARCHIVE):
        op.execute(
            f"ALTER TABLE {schema}.orders ADD COLUMN office_id text NOT NULL DEFAULT '', "
            "ADD COLUMN site_id text NOT NULL DEFAULT ''"
        )
        op.execute(f"CREATE INDEX orders_office ON {schema}.orders (office_id, created_day)")


def downgrade() -> None:
    for schema in (MAIN, ARCHIVE):
        op.execute(f"DROP INDEX {schema}.orders_office")
        op.execute(f"ALTER TABLE {schema}.orders DROP COLUMN site_id, DROP COLUMN office_id")

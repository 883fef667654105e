"""The reconciliation result per provider and day, and each difference it found.

`windowpay reconcile` replaces a day's rows whenever it runs that day again, so the rows
are always the latest run's: a difference healed since is no longer listed unresolved.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconciliations",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("provider", sa.Text, primary_key=True),
        sa.Column("bill_rows", sa.Integer, nullable=False),
        sa.Column("matched_count", sa.Integer, nullable=False),
        sa.Column("matched_amount_fen", sa.BigInteger, nullable=False),
        sa.Column("refunds_matched_count", sa.Integer, nullable=False),
        sa.Column("refunds_matched_amount_fen", sa.BigInteger, nullable=False),
        sa.Column("failure", sa.Text, nullable=False),  # why there was no usable bill
        sa.Column("ran_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "reconciliation_differences",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("provider", sa.Text, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("out_trade_no", sa.Text, nullable=False),
        sa.Column("out_refund_no", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("windowpay_amount_fen", sa.BigInteger, nullable=False),
        sa.Column("provider_amount_fen", sa.BigInteger, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("resolved", sa.Boolean, nullable=False),
        sa.ForeignKeyConstraint(
            ["day", "provider"],
            ["reconciliations.day", "reconciliations.provider"],
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "reconciliation_differences_open",
        "reconciliation_differences",
        ["day"],
        postgresql_where=sa.text("NOT resolved"),
    )


def downgrade() -> None:
    op.drop_table("reconciliation_differences")
    op.drop_table("reconciliations")

"""The journal's hash chain (store/chain.py) and the audit of it.

Each journal row gets its link: the service point and business day of its chain, its
number in it, the hash of the entry before it and its own (also inside `entry`, which
the hash covers; the columns are for finding and ordering). `audit_roots` holds each
service point's signed daily root as `windowpay audit close` made it; the signature is
made with the audit key, which the database does not hold. `audit_verifications` keeps
the last `windowpay audit verify` of each day for the console's auditor page.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("journal", sa.Column("service_point_id", sa.Text))
    op.add_column("journal", sa.Column("chain_day", sa.Date))
    op.add_column("journal", sa.Column("chain_seq", sa.BigInteger))
    op.add_column("journal", sa.Column("prev_hash", sa.Text))
    op.add_column("journal", sa.Column("entry_hash", sa.Text))
    op.create_index("journal_chain", "journal", ["chain_day", "service_point_id", "chain_seq"])
    op.create_table(
        "audit_roots",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("service_point_id", sa.Text, primary_key=True),
        sa.Column("entries", sa.BigInteger, nullable=False),
        sa.Column("root_hash", sa.Text, nullable=False),
        sa.Column("payments", sa.BigInteger, nullable=False),
        sa.Column("payments_fen", sa.BigInteger, nullable=False),
        sa.Column("refunds", sa.BigInteger, nullable=False),
        sa.Column("refunds_fen", sa.BigInteger, nullable=False),
        sa.Column("statement", sa.Text, nullable=False),  # the signed bytes
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("closed_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "audit_verifications",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("service_point_id", sa.Text, primary_key=True),  # "" for every one
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("entries", sa.BigInteger, nullable=False),
        sa.Column("findings", sa.Integer, nullable=False),
        sa.Column("first_finding", sa.Text, nullable=False),
        sa.Column("ran_at_ms", sa.BigInteger, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_verifications")
    op.drop_table("audit_roots")
    op.drop_index("journal_chain", "journal")
    for column in ("entry_hash", "prev_hash", "chain_seq", "chain_day", "service_point_id"):
        op.drop_column("journal", column)

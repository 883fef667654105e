"""The record: orders with their lines, attempts, refunds and journal; payment events;
receipts; settlements.

Times are kept as the epoch milliseconds windowpay uses everywhere, with the local
business day beside them for the reports. `version` is the order's version in Redis:
an order row is only ever replaced by a newer one.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("service_point_id", sa.Text, nullable=False),
        sa.Column("window_id", sa.Text, nullable=False),
        sa.Column("business_no", sa.Text, nullable=False),
        sa.Column("payer_name", sa.Text, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("catalog_version", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("created_day", sa.Date, nullable=False),
        sa.Column("paid_at_ms", sa.BigInteger),
        sa.Column("paid_day", sa.Date),
        sa.Column("paid_by", sa.Text, nullable=False),
        sa.Column("paid_channel", sa.Text),
        sa.Column("refunded_fen", sa.BigInteger, nullable=False),
        sa.Column("snapshot", JSONB, nullable=False),
        sa.Column("drained_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    op.create_index("orders_business_no", "orders", ["business_no"])
    op.create_index("orders_paid_day", "orders", ["paid_day", "service_point_id"])
    op.create_index("orders_created_day", "orders", ["created_day"])
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.Text, sa.ForeignKey("orders.order_id"), primary_key=True),
        sa.Column("line_no", sa.SmallInteger, primary_key=True),
        sa.Column("fee_code", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("unit", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price_fen", sa.BigInteger, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "attempts",
        sa.Column("attempt_id", sa.Text, primary_key=True),
        sa.Column("order_id", sa.Text, sa.ForeignKey("orders.order_id"), nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("terminal_id", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("finished_at_ms", sa.BigInteger),
        sa.Column("finished_day", sa.Date),
        sa.Column("provider_trade_no", sa.Text, nullable=False),
        sa.Column("failure_reason", sa.Text, nullable=False),
        sa.Column("follow_up", sa.Boolean, nullable=False),
    )
    op.create_index("attempts_order", "attempts", ["order_id"])
    op.create_index("attempts_finished_day", "attempts", ["finished_day", "state"])
    op.create_table(
        "refunds",
        sa.Column("refund_id", sa.Text, primary_key=True),
        sa.Column("order_id", sa.Text, sa.ForeignKey("orders.order_id"), nullable=False),
        sa.Column("attempt_id", sa.Text, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("supervisor_id", sa.Text, nullable=False),
        sa.Column("terminal_id", sa.Text, nullable=False),
        sa.Column("automatic", sa.Boolean, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("finished_at_ms", sa.BigInteger),
        sa.Column("finished_day", sa.Date),
        sa.Column("provider_refund_no", sa.Text, nullable=False),
        sa.Column("failure_reason", sa.Text, nullable=False),
    )
    op.create_index("refunds_order", "refunds", ["order_id"])
    op.create_table(
        "journal",
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("what", sa.Text, nullable=False),
        sa.Column("order_state", sa.Text, nullable=False),
        sa.Column("entry", JSONB, nullable=False),
    )
    op.create_table(
        "payment_events",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("service_point_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("refund_id", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("order_version", sa.Integer, nullable=False),
    )
    op.create_index("payment_events_order", "payment_events", ["order_id"])
    op.create_table(
        "receipts",
        sa.Column("receipt_code", sa.Text, primary_key=True),
        sa.Column("receipt_no", sa.Text, primary_key=True),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("total_fen", sa.BigInteger, nullable=False),
        sa.Column("refunded_fen", sa.BigInteger, nullable=False),
        sa.Column("issued_at_ms", sa.BigInteger, nullable=False),
        sa.Column("record", JSONB, nullable=False),
    )
    op.create_index("receipts_order", "receipts", ["order_id"])
    op.create_table(
        "settlements",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("service_point_id", sa.Text, primary_key=True),
        sa.Column("window_id", sa.Text, primary_key=True),
        sa.Column("channel", sa.Text, primary_key=True),
        sa.Column("payments", sa.Integer, nullable=False),
        sa.Column("payments_fen", sa.BigInteger, nullable=False),
        sa.Column("refunds", sa.Integer, nullable=False),
        sa.Column("refunds_fen", sa.BigInteger, nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )


def downgrade() -> None:
    for table in (
        "settlements", "receipts", "payment_events", "journal",
        "refunds", "attempts", "order_lines", "orders",
    ):  # fmt: skip
        op.drop_table(table)

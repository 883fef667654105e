"""The reconciliation result kept in the PostgreSQL record, where the console reads it.

A run replaces its day's rows in one transaction: running a day again (after a late
success was refunded, say) leaves that day's latest result and nothing else."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from orchestrator.reconcile.job import Report

_RUNS = """
    INSERT INTO reconciliations (day, provider, bill_rows, matched_count, matched_amount_fen,
        refunds_matched_count, refunds_matched_amount_fen, failure, ran_at_ms)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_DIFFERENCES = """
    INSERT INTO reconciliation_differences (day, provider, seq, kind, out_trade_no,
        out_refund_no, order_id, windowpay_amount_fen, provider_amount_fen, detail, action,
        resolved)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


async def save(conn: AsyncConnection[Any], report: Report, ran_at_ms: int) -> None:
    runs = [
        (report.day, channel.value, m.bill_rows, m.matched_count, m.matched_amount_fen,
         m.refunds_matched_count, m.refunds_matched_amount_fen, "", ran_at_ms)
        for channel, m in report.matches.items()
    ] + [
        (report.day, channel.value, 0, 0, 0, 0, 0, why, ran_at_ms)
        for channel, why in report.failures.items()
    ]  # fmt: skip
    differences = [
        (report.day, d.provider.value, seq, d.kind.value, d.out_trade_no, d.out_refund_no,
         d.order_id, d.windowpay_amount_fen, d.provider_amount_fen, d.detail, o.action,
         o.resolved)
        for seq, o in enumerate(report.outcomes)
        for d in (o.difference,)
    ]  # fmt: skip
    async with conn.transaction(), conn.cursor() as cur:
        # Serialises two runs of the same day; the differences go with their runs.
        day_lock = report.day.toordinal()
        await cur.execute("SELECT pg_advisory_xact_lock(7263812, %s::int)", (day_lock,))
        await cur.execute("DELETE FROM reconciliations WHERE day = %s", (report.day,))
        await cur.executemany(_RUNS, runs)
        await cur.executemany(_DIFFERENCES, differences)

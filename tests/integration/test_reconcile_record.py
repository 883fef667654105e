"""`windowpay reconcile` keeps its result in the PostgreSQL record: one day's latest run,
replaced whole when the day is run again."""

from __future__ import annotations

from datetime import date
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from orchestrator.domain.states import Channel
from orchestrator.reconcile import recorded
from orchestrator.reconcile.job import LISTED, Outcome, Report
from orchestrator.reconcile.matcher import Difference, Kind, Match

DAY = date(2026, 11, 27)


def late_success(resolved: bool) -> Outcome:
    difference = Difference(
        Kind.STATE_MISMATCH, Channel.WECHAT, "SP01-X-A1", "", 0, 11000,
        "paid at the provider, FAILED at windowpay", order_id="SP01-X", heal=True,
    )  # fmt: skip
    action = "late success refunded automatically" if resolved else "being refunded; run again"
    return Outcome(difference, action, resolved)


GHOST = Outcome(
    Difference(Kind.MISSING_AT_WINDOWPAY, Channel.WECHAT, "GHOST-1", "", 0, 4321,
               "a payment windowpay never made"),
    LISTED, False,
)  # fmt: skip


def report(day: date, matched: int, outcomes: list[Outcome], failures: bool) -> Report:
    wechat = Match(Channel.WECHAT, day, bill_rows=matched + len(outcomes))
    wechat.matched_count, wechat.matched_amount_fen = matched, matched * 11000
    result = Report(day, matches={Channel.WECHAT: wechat}, outcomes=outcomes)
    if failures:
        result.failures[Channel.ALIPAY] = "no usable bill: timed out"
    return result


async def rows(conn: AsyncConnection[Any], sql: str) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql)
        return list(await cur.fetchall())


async def test_a_rerun_replaces_the_days_result_and_leaves_other_days(database_url: str) -> None:
    async with await AsyncConnection.connect(database_url) as conn:
        await recorded.save(conn, report(date(2026, 11, 26), 1, [GHOST], False), 1)
        await recorded.save(conn, report(DAY, 3, [late_success(False), GHOST], True), 2)
        await recorded.save(conn, report(DAY, 4, [late_success(True), GHOST], False), 3)
        await recorded.save(conn, report(DAY, 4, [late_success(True), GHOST], False), 4)

        runs = await rows(conn, "SELECT * FROM reconciliations ORDER BY day, provider")
        assert [(r["day"], r["provider"], r["matched_count"], r["ran_at_ms"]) for r in runs] == [
            (date(2026, 11, 26), "WECHAT", 1, 1),
            (DAY, "WECHAT", 4, 4),  # ALIPAY's missing bill of the first run is gone
        ]
        assert runs[1]["matched_amount_fen"] == 44000 and runs[1]["failure"] == ""
        differences = await rows(conn, "SELECT * FROM reconciliation_differences ORDER BY day, seq")
        assert [(d["day"], d["kind"], d["out_trade_no"], d["resolved"]) for d in differences] == [
            (date(2026, 11, 26), "missing_at_windowpay", "GHOST-1", False),
            (DAY, "state_mismatch", "SP01-X-A1", True),
            (DAY, "missing_at_windowpay", "GHOST-1", False),
        ]
        healed = differences[1]
        assert (healed["order_id"], healed["provider_amount_fen"]) == ("SP01-X", 11000)
        assert healed["action"] == "late success refunded automatically"


async def test_a_provider_without_a_bill_is_kept_with_its_reason(database_url: str) -> None:
    async with await AsyncConnection.connect(database_url) as conn:
        await recorded.save(conn, report(DAY, 0, [], True), 5)
        runs = await rows(conn, "SELECT provider, failure FROM reconciliations ORDER BY 1")
    assert runs == [
        {"provider": "ALIPAY", "failure": "no usable bill: timed out"},
        {"provider": "WECHAT", "failure": ""},
    ]

"""The console's reads from the PostgreSQL record, each narrowed by the caller's scope
(`StaffScope.where`). Times are epoch milliseconds as everywhere in windowpay; days are the
record's local business days.

The record is partitioned by the day each order was made (record/partitions.py). A read
of the payments of a day names the order days that had payments finish on it
(`RecordReader.order_days`), and joins an order's rows on its day too, so that only
those partitions are planned. Lists that span every day by what they mean (pending
refunds, what needs a person, an order or receipt by its id) look in each partition's
index."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import orjson
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from orchestrator.console.ranks import RankRow, Ranks, Unit
from orchestrator.console.scope import StaffScope
from orchestrator.record.reader import RecordReader

Row = dict[str, Any]
OPEN_STATES = ("AWAITING_PAYMENT", "PAYING")
UNRESOLVED_ATTEMPTS = ("SUBMITTED", "AWAITING_PAYER", "REVERSING", "UNKNOWN")
SEARCH_LIMIT = 200
WEEK_MS = 7 * 86_400_000


@dataclass(frozen=True, slots=True)
class Today:
    day: date
    payments: int
    payments_fen: int
    refunds: int
    refunds_fen: int
    open_orders: int
    stuck_orders: int
    pending_refunds: int  # in scope, whatever their age
    paid_last_week_fen: int  # the same weekday a week before, until the same time of day
    by: dict[str, list[Row]]  # dimension -> rows of {key, payments, payments_fen}
    hourly: list[int]  # fen paid per hour of the day
    hourly_last_week: list[int]  # the same weekday a week before
    slowest: list[Row]  # window, service point, paid orders, mean seconds created -> paid

    def figures(self) -> dict[str, int]:
        return {
            "payments": self.payments,
            "payments_fen": self.payments_fen,
            "refunds": self.refunds,
            "refunds_fen": self.refunds_fen,
            "open_orders": self.open_orders,
            "stuck_orders": self.stuck_orders,
            "pending_refunds": self.pending_refunds,
            "paid_last_week_fen": self.paid_last_week_fen,
        }


@dataclass(frozen=True, slots=True)
class SearchFilters:
    order_id: str = ""
    business_no: str = ""
    receipt_no: str = ""
    first: date | None = None
    last: date | None = None
    window_id: str = ""
    channel: str = ""
    state: str = ""


@dataclass(frozen=True, slots=True)
class OrderPage:
    order: Row
    lines: list[Row]
    attempts: list[Row]
    refunds: list[Row]
    receipt: Row | None
    journal: list[Row] = field(default_factory=list)


_BY = ("channel", "service_point", "window")
_PAID_GROUPED = """
    SELECT CASE WHEN GROUPING(a.channel) = 0 THEN 'channel'
                WHEN GROUPING(o.service_point_id) = 0 THEN 'service_point'
                WHEN GROUPING(o.window_id) = 0 THEN 'window'
                WHEN GROUPING(h.hour) = 0 THEN 'hour' ELSE 'total' END AS dimension,
           coalesce(a.channel, o.service_point_id, o.window_id, h.hour::text) AS key,
           count(*) AS payments, sum(a.amount_fen) AS payments_fen,
           sum(a.amount_fen) FILTER (WHERE a.finished_at_ms < %(until)s) AS until_fen
    FROM attempts a JOIN orders o ON o.order_id = a.order_id AND o.created_day = a.order_day,
         LATERAL (SELECT extract(hour FROM to_timestamp(a.finished_at_ms / 1000.0)
                                 AT TIME ZONE %(zone)s)::int AS hour) h
    WHERE a.state = 'SUCCEEDED' AND a.finished_day = %(day)s AND {scope}
      AND a.order_day = ANY(%(order_days)s) AND o.created_day = ANY(%(order_days)s)
    GROUP BY GROUPING SETS ((), (a.channel), (o.service_point_id), (o.window_id), (h.hour))
"""
_FEE_ITEMS = """
    SELECT l.fee_code AS key, sum(l.quantity) AS payments, sum(l.amount_fen) AS payments_fen
    FROM attempts a JOIN orders o ON o.order_id = a.order_id AND o.created_day = a.order_day
    JOIN order_lines l ON l.order_id = o.order_id AND l.order_day = o.created_day
    WHERE a.state = 'SUCCEEDED' AND a.finished_day = %(day)s AND {scope}
      AND a.order_day = ANY(%(order_days)s) AND o.created_day = ANY(%(order_days)s)
      AND l.order_day = ANY(%(order_days)s)
    GROUP BY 1 ORDER BY 3 DESC, 1
"""
# The day's refunds asked for by a supervisor, and every refund still pending (automatic
# ones, of late successes, included: all of them wait on a provider).
_REFUNDS = """
    SELECT count(*) FILTER (WHERE r.state = 'SUCCEEDED') AS n,
           coalesce(sum(r.amount_fen) FILTER (WHERE r.state = 'SUCCEEDED'), 0) AS fen,
           count(*) FILTER (WHERE r.state = 'PENDING') AS pending
    FROM refunds r JOIN orders o ON o.order_id = r.order_id AND o.created_day = r.order_day
    WHERE {scope} AND (r.state = 'PENDING'
                       OR (r.state = 'SUCCEEDED' AND NOT r.automatic AND r.finished_day = %(day)s))
"""
# Open orders expire at the end of their business day: yesterday's and today's suffice.
_OPEN = """
    SELECT count(*) AS n, count(*) FILTER (WHERE o.created_at_ms < %(stuck_before)s) AS stuck
    FROM orders o
    WHERE o.created_day BETWEEN %(since)s AND %(day)s AND o.state = ANY(%(open)s) AND {scope}
"""
_SLOWEST = """
    SELECT o.window_id, o.service_point_id, count(*) AS paid,
           round(avg(o.paid_at_ms - o.created_at_ms) / 1000.0, 1) AS seconds
    FROM orders o WHERE o.paid_day = %(day)s AND o.created_day = ANY(%(order_days)s) AND {scope}
    GROUP BY 1, 2 ORDER BY 4 DESC LIMIT 5
"""

# The statistics page: per part of the unit asked for, payments and failures finished in
# the days, and the mean time from an order made to paid.
_PLACED = """LEFT JOIN unnest(%(pl_sp)s::text[], %(pl_office)s::text[], %(pl_site)s::text[])
         AS pl(sp, office, site) ON pl.sp = o.service_point_id"""
_RANK_ATTEMPTS = """
    SELECT {part} AS part, count(*) FILTER (WHERE a.state = 'SUCCEEDED') AS payments,
           coalesce(sum(a.amount_fen) FILTER (WHERE a.state = 'SUCCEEDED'), 0) AS payments_fen,
           count(*) FILTER (WHERE a.state IN ('FAILED', 'REVERSED')) AS failures
    FROM attempts a JOIN orders o ON o.order_id = a.order_id AND o.created_day = a.order_day
    {placed}
    WHERE a.finished_day BETWEEN %(first)s AND %(last)s
      AND a.state IN ('SUCCEEDED', 'FAILED', 'REVERSED')
      AND a.order_day = ANY(%(order_days)s) AND o.created_day = ANY(%(order_days)s)
      AND {scope} AND {unit}
    GROUP BY 1
"""
_RANK_PAID = """
    SELECT {part} AS part, count(*) AS paid,
           round(avg(o.paid_at_ms - o.created_at_ms) / 1000.0, 1) AS seconds
    FROM orders o {placed}
    WHERE o.paid_day BETWEEN %(first)s AND %(last)s AND o.created_day = ANY(%(order_days)s)
      AND {scope} AND {unit}
    GROUP BY 1
"""


class ConsoleQueries:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        self._record = RecordReader(pool)

    async def _all(self, sql: str, params: dict[str, Any]) -> list[Row]:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, params)  # the SQL text is ours; only params vary
            return list(await cur.fetchall())

    async def today(
        self, scope: StaffScope, day: date, now_ms: int, stuck_after_s: int, zone: str
    ) -> Today:
        """The figures of one local day. One scan of the day's payments answers the
        totals, the breakdowns and the hourly chart (grouping sets); the other reads run
        beside it on the pool's other connections."""
        where, params = scope.where()
        params = {
            **params,
            "day": day,
            "zone": zone,
            "since": day - timedelta(days=1),
            "open": list(OPEN_STATES),
            "stuck_before": now_ms - stuck_after_s * 1000,
            "until": now_ms + 1,
        }
        params["order_days"] = await self._record.order_days(day, day)
        day_before = day - timedelta(days=7)
        week_before = {
            **params,
            "day": day_before,
            "until": now_ms - WEEK_MS,
            "order_days": await self._record.order_days(day_before, day_before),
        }
        paid, last_week, fee_items, refunds, open_rows, slowest = await asyncio.gather(
            self._all(_PAID_GROUPED.format(scope=where), params),
            self._all(_PAID_GROUPED.format(scope=where), week_before),
            self._all(_FEE_ITEMS.format(scope=where), params),
            self._all(_REFUNDS.format(scope=where), params),
            self._all(_OPEN.format(scope=where), params),
            self._all(_SLOWEST.format(scope=where), params),
        )
        by: dict[str, list[Row]] = {name: [] for name in _BY}
        hourly, hourly_last_week = [0] * 24, [0] * 24
        totals: Row = {"payments": 0, "payments_fen": 0}
        for row in paid:
            if row["dimension"] == "total":
                totals = row
            elif row["dimension"] == "hour":
                hourly[int(row["key"])] = int(row["payments_fen"])
            else:
                by[row["dimension"]].append(row)
        paid_last_week_fen = 0
        for row in last_week:
            if row["dimension"] == "hour":
                hourly_last_week[int(row["key"])] = int(row["payments_fen"])
            elif row["dimension"] == "total":
                paid_last_week_fen = int(row["until_fen"] or 0)
        for rows in by.values():
            rows.sort(key=lambda r: (-int(r["payments_fen"]), str(r["key"])))
        return Today(
            day=day,
            payments=int(totals["payments"] or 0),
            payments_fen=int(totals["payments_fen"] or 0),
            refunds=int(refunds[0]["n"]),
            refunds_fen=int(refunds[0]["fen"]),
            open_orders=int(open_rows[0]["n"]),
            stuck_orders=int(open_rows[0]["stuck"]),
            pending_refunds=int(refunds[0]["pending"]),
            paid_last_week_fen=paid_last_week_fen,
            by={**by, "fee_item": fee_items},
            hourly=hourly,
            hourly_last_week=hourly_last_week,
            slowest=slowest,
        )

    async def ranks(
        self, scope: StaffScope, ranks: Ranks, unit: Unit, part_ids: list[str],
        first: date, last: date,
    ) -> list[RankRow]:  # fmt: skip
        """One row per part of `unit` (`part_ids`, in order), read under `scope`."""
        where, params = scope.where()
        narrow, unit_params = ranks.where(unit)
        part, _ = ranks.part_key(unit)
        days = {first + timedelta(days=n) for n in range((last - first).days + 1)}
        params = {
            **params, **unit_params, **ranks.placed(), "first": first, "last": last,
            "order_days": sorted(days | set(await self._record.order_days(first, last))),
        }  # fmt: skip
        text = {"part": part, "placed": _PLACED, "scope": where, "unit": narrow}
        attempts, paid = await asyncio.gather(
            self._all(_RANK_ATTEMPTS.format(**text), params),
            self._all(_RANK_PAID.format(**text), params),
        )
        tried = {r["part"]: r for r in attempts}
        timed = {r["part"]: r for r in paid}
        extra = sorted(k for k in {*tried, *timed} if k is not None and k not in part_ids)
        rows = []
        for part_id in [*part_ids, *extra]:  # a part the config no longer has still shows
            a, p = tried.get(part_id, {}), timed.get(part_id, {})
            seconds = p.get("seconds")
            rows.append(
                RankRow(
                    id=part_id,
                    payments=int(a.get("payments") or 0),
                    payments_fen=int(a.get("payments_fen") or 0),
                    failures=int(a.get("failures") or 0),
                    paid_orders=int(p.get("paid") or 0),
                    seconds_to_pay=None if seconds is None else float(seconds),
                )
            )
        return rows

    async def search(self, scope: StaffScope, f: SearchFilters) -> list[Row]:
        where, params = scope.where()
        conditions = [where]
        if f.order_id:
            conditions.append("o.order_id = %(order_id)s")
        if f.business_no:
            conditions.append("o.business_no = %(business_no)s")
        if f.receipt_no:
            conditions.append(
                "o.order_id IN (SELECT order_id FROM receipts WHERE receipt_no = %(receipt_no)s)"
            )
        if f.first:
            conditions.append("o.created_day >= %(first)s")
        if f.last:
            conditions.append("o.created_day <= %(last)s")
        if f.window_id:
            conditions.append("o.window_id = %(window_id)s")
        if f.channel:
            conditions.append("o.paid_channel = %(channel)s")
        if f.state:
            conditions.append("o.state = %(state)s")
        return await self._all(
            f"""SELECT o.order_id, o.business_no, o.payer_name, o.service_point_id, o.window_id,
                       o.amount_fen, o.state, o.paid_channel, o.created_at_ms
                FROM orders o WHERE {" AND ".join(conditions)}
                ORDER BY o.created_at_ms DESC LIMIT {SEARCH_LIMIT}""",
            {**params, **{k: getattr(f, k) for k in f.__slots__}},
        )

    async def order(self, order_id: str) -> OrderPage | None:
        """The whole order; the caller checks its scope before showing any of it."""
        one = {"id": order_id}
        orders = await self._all("SELECT * FROM orders o WHERE o.order_id = %(id)s", one)
        if not orders:
            return None
        receipts = await self._all(
            "SELECT record FROM receipts WHERE order_id = %(id)s ORDER BY issued_at_ms", one
        )
        return OrderPage(
            order=orders[0],
            lines=await self._all(
                "SELECT * FROM order_lines WHERE order_id = %(id)s ORDER BY line_no", one
            ),
            attempts=await self._all(
                "SELECT * FROM attempts WHERE order_id = %(id)s ORDER BY created_at_ms", one
            ),
            refunds=await self._all(
                "SELECT * FROM refunds WHERE order_id = %(id)s ORDER BY created_at_ms", one
            ),
            receipt=_json(receipts[0]["record"]) if receipts else None,
            journal=await self._all(
                "SELECT version, at_ms, what, order_state, entry FROM journal "
                "WHERE order_id = %(id)s ORDER BY version",
                one,
            ),
        )

    async def supervision(
        self, scope: StaffScope, now_ms: int, overdue_s: int, playbook_s: Mapping[str, float]
    ) -> dict[str, list[Row]]:
        """What needs a person. An attempt is overdue once its channel's playbook should
        have settled it (`playbook_s`, by channel; `overdue_s` for a channel without one);
        a refund once pending `overdue_s`."""
        where, params = scope.where()
        params = {**params, "before": now_ms - overdue_s * 1000}
        channels = sorted(playbook_s)
        return {
            "unresolved_attempts": await self._all(
                f"""SELECT a.attempt_id, a.order_id, a.channel, a.state, a.terminal_id,
                           a.created_at_ms, o.window_id
                    FROM attempts a JOIN orders o ON o.order_id = a.order_id
                    LEFT JOIN unnest(%(channels)s::text[], %(playbook_ms)s::bigint[])
                         AS p(channel, ms) ON p.channel = a.channel
                    WHERE (a.state = ANY(%(states)s) OR a.follow_up)
                      AND a.created_at_ms < %(now)s - coalesce(p.ms, %(overdue_ms)s)
                      AND {where}
                    ORDER BY a.created_at_ms LIMIT 100""",
                {
                    **params,
                    "states": list(UNRESOLVED_ATTEMPTS),
                    "channels": channels,
                    "playbook_ms": [round(playbook_s[c] * 1000) for c in channels],
                    "now": now_ms,
                    "overdue_ms": overdue_s * 1000,
                },
            ),
            "unhealed_differences": await self.differences(scope, unresolved_only=True),
            "pending_refunds": await self._all(
                f"""SELECT r.refund_id, r.order_id, r.amount_fen, r.supervisor_id,
                           r.created_at_ms, o.window_id
                    FROM refunds r JOIN orders o ON o.order_id = r.order_id
                    WHERE r.state = 'PENDING' AND r.created_at_ms < %(before)s AND {where}
                    ORDER BY r.created_at_ms LIMIT 100""",
                params,
            ),
            "late_successes": await self._all(
                f"""SELECT r.refund_id, r.order_id, r.amount_fen, r.state, r.created_at_ms,
                           o.window_id
                    FROM refunds r JOIN orders o ON o.order_id = r.order_id
                    WHERE r.automatic AND {where}
                    ORDER BY r.created_at_ms DESC LIMIT 100""",
                params,
            ),
            "refunds_by_supervisor": await self._all(
                f"""SELECT r.supervisor_id, o.window_id, a.channel, count(*) refunds,
                           sum(r.amount_fen) refunds_fen
                    FROM refunds r JOIN orders o ON o.order_id = r.order_id
                    JOIN attempts a ON a.attempt_id = r.attempt_id
                    WHERE NOT r.automatic AND r.state = 'SUCCEEDED' AND {where}
                    GROUP BY 1, 2, 3 ORDER BY 4 DESC, 5 DESC LIMIT 100""",
                params,
            ),
        }

    async def differences(
        self, scope: StaffScope, *, day: date | None = None, unresolved_only: bool = False
    ) -> list[Row]:
        """Reconciliation differences of the latest run of each day, of the orders in
        scope; one the bill shows and windowpay does not know belongs to no order, so
        only the roles that see the whole deployment see it (`scope.where` is then TRUE;
        for any other it is false on the missing order)."""
        where, params = scope.where()
        conditions = [where]
        if day is not None:
            conditions.append("d.day = %(day)s")
        if unresolved_only:
            conditions.append("NOT d.resolved")
        return await self._all(
            f"""SELECT d.day, d.provider, d.kind, d.out_trade_no, d.out_refund_no, d.order_id,
                       d.windowpay_amount_fen, d.provider_amount_fen, d.detail, d.action,
                       d.resolved
                FROM reconciliation_differences d LEFT JOIN orders o ON o.order_id = d.order_id
                WHERE {" AND ".join(conditions)}
                ORDER BY d.day DESC, d.provider, d.seq LIMIT 500""",
            {**params, "day": day},
        )

    async def reconciliation_runs(self, day: date) -> list[Row]:
        """Each provider's matched totals for the day: of the deployment's merchant
        accounts, so the caller checks `StaffScope.deployment_wide` first."""
        return await self._all(
            "SELECT * FROM reconciliations WHERE day = %(day)s ORDER BY provider", {"day": day}
        )

    async def audit_days(self, days: int, scope: StaffScope) -> list[Row]:
        """The last days closed or verified: per day, the signed roots (entries,
        payments, refunds) of the service points in scope and the last verification of
        the whole day. For a role that sees whole offices (the caller checks
        `StaffScope.office_wide`); an office's director or auditor gets its own points'
        roots, and the verification's status and count but not its first finding (which
        may name another office's order)."""
        points = "TRUE" if scope.deployment_wide else "service_point_id = ANY(%(points)s)"
        finding = "v.first_finding" if scope.deployment_wide else "NULL::text"
        return await self._all(
            f"""WITH closed AS (
                   SELECT day, count(*) points, sum(entries) entries, sum(payments) payments,
                          sum(payments_fen) payments_fen, sum(refunds) refunds,
                          sum(refunds_fen) refunds_fen, max(closed_at_ms) closed_at_ms
                   FROM audit_roots WHERE {points} GROUP BY day),
               checked AS (
                   SELECT day, bool_and(ok) ok, sum(findings) findings,
                          max(ran_at_ms) ran_at_ms,
                          (array_agg(first_finding ORDER BY ran_at_ms DESC)
                              FILTER (WHERE NOT ok))[1] first_finding
                   FROM audit_verifications GROUP BY day)
               SELECT coalesce(c.day, v.day) AS day, c.points, c.entries, c.payments,
                      c.payments_fen, c.refunds, c.refunds_fen, c.closed_at_ms, v.ok,
                      v.findings, v.ran_at_ms, {finding} AS first_finding
               FROM closed c FULL JOIN checked v ON v.day = c.day
               ORDER BY 1 DESC LIMIT %(days)s""",
            {"days": days, "points": sorted(scope.points)},
        )

    async def fee_items_of_month(self, scope: StaffScope, month: date) -> list[Row]:
        where, params = scope.where()
        first = month.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
        return await self._all(
            f"""SELECT l.fee_code, l.name, sum(l.quantity) quantity, count(DISTINCT o.order_id)
                       orders, sum(l.amount_fen) amount_fen
                FROM attempts a
                JOIN orders o ON o.order_id = a.order_id AND o.created_day = a.order_day
                JOIN order_lines l ON l.order_id = o.order_id AND l.order_day = o.created_day
                WHERE a.state = 'SUCCEEDED' AND a.finished_day >= %(first)s
                  AND a.finished_day < %(after)s AND {where}
                  AND a.order_day = ANY(%(order_days)s) AND o.created_day = ANY(%(order_days)s)
                  AND l.order_day = ANY(%(order_days)s)
                GROUP BY 1, 2 ORDER BY 1""",
            {
                **params,
                "first": first,
                "after": after,
                "order_days": await self._record.order_days(first, after - timedelta(days=1)),
            },
        )

    async def orders_of_day(self, scope: StaffScope, day: date) -> list[bytes]:
        """Snapshots of the orders created, paid or refunded on the day, in scope: what
        the settlement is computed from, as the GetSettlement RPC does."""
        where, params = scope.where()
        order_days = sorted({day, *await self._record.order_days(day, day)})
        rows = await self._all(
            f"""SELECT o.snapshot::text AS snapshot FROM orders o
                WHERE {where} AND o.created_day = ANY(%(order_days)s)
                  AND (o.order_id, o.created_day) IN (
                    SELECT order_id, created_day FROM orders WHERE created_day = %(day)s
                    UNION SELECT order_id, order_day FROM attempts
                          WHERE finished_day = %(day)s AND order_day = ANY(%(order_days)s)
                    UNION SELECT order_id, order_day FROM refunds
                          WHERE finished_day = %(day)s AND order_day = ANY(%(order_days)s))
                ORDER BY o.order_id""",
            {**params, "day": day, "order_days": order_days},
        )
        return [row["snapshot"].encode() for row in rows]

    async def receipt(self, code: str, number: str) -> Row | None:
        rows = await self._all(
            "SELECT record FROM receipts WHERE receipt_code = %(c)s AND receipt_no = %(n)s",
            {"c": code, "n": number},
        )
        return _json(rows[0]["record"]) if rows else None

    async def payment_of(self, order_id: str) -> Row | None:
        """What the payer's page tells of the order beside its receipt (the caller has
        checked the receipt's check code)."""
        rows = await self._all(
            "SELECT order_id, business_no, service_point_id, window_id, state, amount_fen, "
            "refunded_fen, paid_at_ms, paid_channel FROM orders WHERE order_id = %(id)s",
            {"id": order_id},
        )
        return rows[0] if rows else None

    async def refunds_of_order(self, order_id: str) -> list[Row]:
        """Every refund of the order, windowpay's own included (a second charge of the
        payer's, refunded automatically)."""
        return await self._all(
            "SELECT refund_id, amount_fen, state, finished_at_ms, automatic FROM refunds "
            "WHERE order_id = %(id)s ORDER BY created_at_ms",
            {"id": order_id},
        )


def _json(value: Any) -> Row:
    if isinstance(value, dict):
        return value
    loaded: Row = orjson.loads(value)
    return loaded

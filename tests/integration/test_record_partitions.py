"""The record partitioned by business day, against a real PostgreSQL (a throwaway
cluster): partitions made ahead and on demand, a late row of an old day, the archive
and the reads that still find it, the days each main read plans (EXPLAIN), an
idempotent re-drain, and the move from 0002's plain tables with their rows."""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from loadtest.console_data import snapshot
from orchestrator.cli import main
from orchestrator.config import load_config
from orchestrator.console.accounts import Role
from orchestrator.console.queries import ConsoleQueries, SearchFilters
from orchestrator.console.scope import StaffScope
from orchestrator.record import migrate, partitions
from orchestrator.record.drainer import Drainer
from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.record.partitions import ARCHIVE, MAIN, TABLES, Partitions
from orchestrator.record.reader import RecordReader
from orchestrator.record.writer import DrainedEvent, DrainedOrder, RecordWriter

ZONE = ZoneInfo("Asia/Shanghai")
TODAY = datetime.now(ZONE).date()


def at(day: date, hour: int = 10) -> int:
    """Epoch ms of the hour of a local day."""
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=ZONE).timestamp() * 1000)


def paid(order_id: str, day: date, hour: int = 10) -> DrainedOrder:
    sp = order_id.split("-", 1)[0]
    return snapshot(order_id, sp, f"{sp}-W1", at(day, hour), paid_after_s=30, channel="WECHAT")


def refunded(order: DrainedOrder, day: date, fen: int = 1000) -> DrainedOrder:
    """The order's next version: a supervisor's refund that succeeded on `day`."""
    o = dict(order.snapshot)
    when = at(day, 11)
    refund = {
        "refund_id": f"{o['order_id']}-R1", "attempt_id": o["paid_by"], "amount_fen": fen,
        "state": "SUCCEEDED", "reason": "asked", "supervisor_id": "S1", "terminal_id": "T1",
        "automatic": False, "created_at": when - 1000, "finished_at": when,
        "provider_refund_no": f"PR{o['order_id']}", "failure_reason": "",
    }  # fmt: skip
    version = o["version"] + 1
    o.update(version=version, refunds=[refund], refunded_fen=fen, state="PARTIALLY_REFUNDED")
    entry = {"v": version, "at": when, "what": "refund", "order_state": o["state"]}
    return DrainedOrder(o, [*order.journal, entry])


def event(order: DrainedOrder) -> DrainedEvent:
    o = order.snapshot
    entry = f"{o['paid_at']}-{zlib.crc32(o['order_id'].encode())}"  # as a stream entry id
    return DrainedEvent(f"{o['service_point_id']}-{entry}", "PAID", o["paid_at"], "",
                        o["order_id"], o["version"])  # fmt: skip


def receipt(order: DrainedOrder) -> dict[str, Any]:
    o = order.snapshot
    return {"receipt_code": "R01", "receipt_no": f"R01:{o['order_id'][-6:]}",
            "order_id": o["order_id"], "status": "ISSUED", "total_fen": o["amount_fen"],
            "refunded_fen": 0, "issued_at": o["paid_at"]}  # fmt: skip


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4) as opened:
        yield opened


async def write(url: str, *pages: list[DrainedOrder], writer: RecordWriter | None = None) -> None:
    writer = writer or RecordWriter(ZONE)
    async with await AsyncConnection.connect(url) as conn:
        for page in pages:
            await writer.write(conn, page, [event(o) for o in page if o.snapshot["paid_at"]],
                               [receipt(o) for o in page if o.snapshot["paid_at"]])  # fmt: skip


async def cli(*args: str) -> int:
    """`windowpay ...` in this process (it runs its own event loop)."""
    return await asyncio.to_thread(main, list(args))


async def counts(url: str, schema: str = MAIN) -> dict[str, int]:
    async with await AsyncConnection.connect(url) as conn:
        found = {}
        for table in TABLES:
            row = await (await conn.execute(f"SELECT count(*) FROM {schema}.{table}")).fetchone()
            found[table] = int(row[0]) if row else 0
        return found


async def days(url: str, schema: str = MAIN) -> list[date]:
    async with await AsyncConnection.connect(url) as conn:
        return await partitions.attached_days(conn, schema)


async def test_partitions_are_made_ahead_for_every_table(database_url: str) -> None:
    made = Partitions()
    async with await AsyncConnection.connect(database_url) as conn:
        first = await made.ensure_ahead(conn, TODAY)
        again = await Partitions().ensure_ahead(conn, TODAY)  # another process: nothing to do
        cur = await conn.execute(
            "SELECT p.relname, count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent "
            "JOIN pg_namespace n ON n.oid = p.relnamespace WHERE n.nspname = 'public' "
            "AND p.relkind = 'p' "
            "GROUP BY p.relname"
        )
        per_table = dict(await cur.fetchall())
    expected = [TODAY + timedelta(days=n) for n in range(-1, partitions.DAYS_AHEAD + 1)]
    assert first == expected
    assert again == []
    assert made.knows_ahead(TODAY) and not made.knows_ahead(TODAY + timedelta(days=1))
    assert await days(database_url) == expected
    assert per_table == {table: len(expected) for table in TABLES}


async def test_the_drainer_makes_the_days_ahead_at_its_housekeeping(
    database_url: str, pool: AsyncConnectionPool[Any]
) -> None:
    redis = Redis.from_url("redis://127.0.0.1:1")  # never reached: the record's part only
    drainer = Drainer(redis, pool, load_config())
    made = await drainer.make_partitions_ahead()
    assert made == [TODAY + timedelta(days=n) for n in range(-1, partitions.DAYS_AHEAD + 1)]
    assert await drainer.make_partitions_ahead() == []  # known: no query at all
    assert await days(database_url) == made
    await redis.aclose()


async def test_a_late_row_of_an_old_day_gets_its_partition_and_is_read(
    database_url: str, pool: AsyncConnectionPool[Any]
) -> None:
    old = TODAY - timedelta(days=40)
    order = paid(f"SP01-{uuid.uuid4().hex[:8]}", old)
    await write(database_url, [order])
    assert old in await days(database_url)
    reader = RecordReader(pool)
    stored = await reader.order(order.snapshot["order_id"])
    assert stored is not None and order.snapshot["order_id"].encode() in stored
    [row] = await reader.report(old, old, ["day"])
    assert (row.payments, row.payments_fen) == (1, order.snapshot["amount_fen"])
    assert len(await reader.orders_of_days(["SP01"], [old])) == 1


async def test_redraining_pages_into_the_partitions_changes_nothing(database_url: str) -> None:
    day = TODAY - timedelta(days=2)
    orders = [paid(f"SP02-{n:04d}", day, 9 + n % 8) for n in range(40)]
    newer = [refunded(orders[0], TODAY), *orders[1:]]
    await write(database_url, orders, newer)
    once = await counts(database_url)
    # the same pages again, and the older page after the newer one
    await write(database_url, newer, orders, newer)
    assert await counts(database_url) == once
    assert once["refunds"] == 1 and once["orders"] == 40 and once["receipts"] == 40
    async with await AsyncConnection.connect(database_url) as conn:
        row = await (
            await conn.execute("SELECT version, state FROM orders WHERE order_id = 'SP02-0000'")
        ).fetchone()
    assert row == (newer[0].snapshot["version"], "PARTIALLY_REFUNDED")


async def test_archive_moves_old_days_and_the_record_still_answers(
    database_url: str, pool: AsyncConnectionPool[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    d1, d2 = TODAY - timedelta(days=30), TODAY - timedelta(days=29)
    old = [paid(f"SP03-A{n}", d1) for n in range(3)] + [paid(f"SP03-B{n}", d2) for n in range(2)]
    recent = [paid(f"SP03-C{n}", TODAY) for n in range(2)]
    drainer = RecordWriter(ZONE)  # it will believe d1 is in the record after the archive
    await write(database_url, old, recent, writer=drainer)
    before = await counts(database_url)
    reader = RecordReader(pool)
    report_before = await reader.report(d1, TODAY, ["day", "channel"])

    archive = ["record", "archive", "--before", str(TODAY - timedelta(days=7)),
               "--database-url", database_url]  # fmt: skip
    assert await cli(*archive, "--dry-run") == 0
    assert "2 day(s) before" in capsys.readouterr().out
    assert await days(database_url, ARCHIVE) == []
    assert await cli(*archive) == 0
    out = capsys.readouterr().out
    assert f"{d1}: archived (orders 3, order_lines 6, attempts 3" in out
    assert f"{d2}: archived (orders 2" in out and "done: 2 day(s) archived" in out
    assert await cli(*archive) == 0  # again: nothing left to move
    assert "0 day(s) before" in capsys.readouterr().out
    assert await days(database_url, ARCHIVE) == [d1, d2]
    assert d1 not in await days(database_url) and TODAY in await days(database_url)

    # nothing lost: every row is in the record or in the archive, once
    moved, kept = await counts(database_url, ARCHIVE), await counts(database_url)
    assert {t: moved[t] + kept[t] for t in TABLES} == before
    assert kept["orders"] == 2
    # the reports and the settlement's reads still find the archived days
    assert await reader.report(d1, TODAY, ["day", "channel"]) == report_before
    assert len(await reader.orders_of_days(["SP03"], [d1])) == 3
    archived = await reader.order("SP03-A0")  # by id: the record, then the archive
    assert archived is not None and b"SP03-A0" in archived

    # a late refund of an archived order brings its day back, whole, and is counted
    await write(database_url, [refunded(old[0], TODAY)], writer=drainer)
    assert d1 in await days(database_url) and await days(database_url, ARCHIVE) == [d2]
    after = await counts(database_url), await counts(database_url, ARCHIVE)
    assert after[0]["orders"] + after[1]["orders"] == before["orders"]
    [today] = [r for r in await reader.report(TODAY, TODAY, ["day"])]
    assert (today.refunds, today.refunds_fen) == (1, 1000)
    with pytest.raises(SystemExit):
        await cli("record", "archive", "--database-url", database_url)  # --before is required
    tomorrow = ["record", "archive", "--before", str(TODAY + timedelta(days=1))]
    assert await cli(*tomorrow, "--database-url", database_url) == 2


class Planned(RecordReader):
    """The reader, EXPLAINing each statement before it runs it: the partitions planned."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        super().__init__(pool)
        self.planned: list[set[str]] = []

    async def _rows(self, sql: str, params: Any = None, schema: str = MAIN) -> list[Any]:
        [(plan,)] = await super()._rows(f"EXPLAIN (FORMAT JSON) {sql}", params, schema)
        self.planned.append(relations(plan[0]["Plan"]))
        return await super()._rows(sql, params, schema)


class PlannedConsole(ConsoleQueries):
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        super().__init__(pool)
        self.planned: list[set[str]] = []

    async def _all(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            row = await cur.fetchone()
            assert row is not None
            self.planned.append(relations(row["QUERY PLAN"][0]["Plan"]))
        return await super()._all(sql, params)


def relations(node: dict[str, Any]) -> set[str]:
    found = {node["Relation Name"]} if "Relation Name" in node else set()
    for child in node.get("Plans", []):
        found |= relations(child)
    return found


def planned_days(planned: list[set[str]]) -> dict[str, set[date]]:
    """Table -> the days of its partitions that the plans name."""
    found: dict[str, set[date]] = {}
    for plan in planned:
        for name in plan:
            table, _, day = name.rpartition("_")
            if day.isdigit():
                found.setdefault(table, set()).add(datetime.strptime(day, "%Y%m%d").date())
    return found


async def test_reads_by_day_plan_only_the_partitions_they_need(
    database_url: str, pool: AsyncConnectionPool[Any]
) -> None:
    week = [TODAY - timedelta(days=n) for n in range(10)]
    orders = [paid(f"SP04-{n}{d:%d}", d) for d in week for n in range(3)]
    late = orders[-1]  # made on the oldest day, refunded today
    await write(database_url, orders, [refunded(late, TODAY)])
    oldest, yesterday, week_before = week[-1], week[1], week[7]
    every = set(week)

    reader = Planned(pool)
    await reader.report(yesterday, yesterday, ["day", "channel"])
    one = {yesterday}
    assert planned_days(reader.planned) == {"orders": one, "attempts": one, "refunds": one}
    reader.planned.clear()
    await reader.report(TODAY, TODAY, ["day"])  # the refund: its order's day too
    two = {TODAY, oldest}
    assert planned_days(reader.planned) == {"orders": two, "attempts": two, "refunds": two}
    reader.planned.clear()
    await reader.report(TODAY, TODAY, ["fee_item"])  # payments only: no refunds planned
    assert planned_days(reader.planned) == {"orders": two, "order_lines": two, "attempts": two}
    reader.planned.clear()
    assert len(await reader.orders_of_days(["SP04"], [TODAY])) == 4
    assert planned_days(reader.planned) == {"orders": two, "attempts": two, "refunds": two}
    reader.planned.clear()
    await reader.order(late.snapshot["order_id"])  # by id: every day's index, nothing else
    assert planned_days(reader.planned) == {"orders": every}

    console = PlannedConsole(pool)
    scope = StaffScope(Role.DIRECTOR)
    figures = await console.today(scope, TODAY, at(TODAY, 12), 600, "Asia/Shanghai")
    assert figures.payments == 3 and figures.refunds == 1
    # Today's payments and refunds, a week before's payments, open orders since
    # yesterday; refunds still pending may be of any day (and their orders).
    assert planned_days(console.planned) == {
        "attempts": {TODAY, oldest, week_before},
        "order_lines": {TODAY, oldest},
        "orders": every,
        "refunds": every,
    }
    console.planned.clear()
    assert len(await console.orders_of_day(scope, yesterday)) == 3
    assert planned_days(console.planned) == {"orders": one, "attempts": one, "refunds": one}
    console.planned.clear()
    await console.search(scope, SearchFilters(first=yesterday, last=yesterday))
    assert planned_days(console.planned) == {"orders": one}
    console.planned.clear()
    await console.fee_items_of_month(scope, TODAY)
    month = {d for d in week if d.month == TODAY.month} | {oldest}
    assert planned_days(console.planned) == {
        "orders": month,
        "order_lines": month,
        "attempts": month,
    }


@pytest.fixture
def plain_database(postgres_server: EmbeddedPostgres) -> Iterator[str]:
    """A database at 0002: the record's tables before they were partitioned."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    migrate.upgrade(url, "0002")
    yield url
    if postgres_server.running:
        postgres_server.drop_database(name)


async def test_a_plain_0002_record_keeps_its_rows_when_partitioned(plain_database: str) -> None:
    d1, d2 = TODAY - timedelta(days=3), TODAY
    # P3 at 05:00 local, the day before in UTC: the events' and receipts' days are local
    orders = [paid("SP05-P1", d1), refunded(paid("SP05-P2", d1), d2), paid("SP05-P3", d2, 5)]
    async with await AsyncConnection.connect(plain_database) as conn:
        for o in orders:
            await _plain_insert(conn, o)
        # a column another migration adds before this one goes along with its values
        await conn.execute("ALTER TABLE journal ADD COLUMN later text")
        await conn.execute("UPDATE journal SET later = order_id || '/' || version")
        await conn.commit()
    before = await counts(plain_database)
    assert before["orders"] == 3 and before["refunds"] == 1 and before["receipts"] == 3

    migrate.upgrade(plain_database)
    assert migrate.current(plain_database) == migrate.HEAD
    assert await counts(plain_database) == before
    assert await days(plain_database) == [d1, d2]
    async with await AsyncConnection.connect(plain_database) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM journal WHERE later = order_id || '/' || version"
        )
        assert await cur.fetchone() == (before["journal"],)
        cur = await conn.execute("SELECT refund_id, order_day FROM refunds")
        assert await cur.fetchall() == [("SP05-P2-R1", d1)]
        cur = await conn.execute("SELECT day, order_day FROM movement_days")
        assert set(await cur.fetchall()) == {(d1, d1), (d2, d1), (d2, d2)}
    # the drainer writing the same orders again finds them where the migration put them
    await write(plain_database, orders)
    assert await counts(plain_database) == before


async def _plain_insert(conn: AsyncConnection[Any], drained: DrainedOrder) -> None:
    """The rows 0002's writer made for an order, its payment event and its receipt."""
    o = drained.snapshot

    def day(ms: int | None) -> date | None:
        return None if ms is None else datetime.fromtimestamp(ms / 1000, ZONE).date()

    async with conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO orders VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (o["order_id"], o["version"], o["service_point_id"], o["window_id"],
             o["business_no"], o["payer_name"], o["amount_fen"], o["state"],
             o["catalog_version"], o["created_at"], day(o["created_at"]), o["paid_at"],
             day(o["paid_at"]), o["paid_by"], "WECHAT", o["refunded_fen"],
             Jsonb(o)),
        )  # fmt: skip
        for n, line in enumerate(o["lines"]):
            await cur.execute(
                "INSERT INTO order_lines VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (o["order_id"], n, line["fee_code"], line["name"], line["unit"],
                 line["category"], line["quantity"], line["unit_price_fen"],
                 line["amount_fen"]),
            )  # fmt: skip
        for a in o["attempts"]:
            await cur.execute(
                "INSERT INTO attempts VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (a["attempt_id"], o["order_id"], a["channel"], a["state"], a["amount_fen"],
                 a["terminal_id"], a["request_id"], a["created_at"], a["finished_at"],
                 day(a["finished_at"]), a["provider_trade_no"], "", False),
            )  # fmt: skip
        for r in o["refunds"]:
            await cur.execute(
                "INSERT INTO refunds VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                (r["refund_id"], o["order_id"], r["attempt_id"], r["amount_fen"], r["state"],
                 r["reason"], r["supervisor_id"], r["terminal_id"], r["automatic"],
                 r["created_at"], r["finished_at"], day(r["finished_at"]),
                 r["provider_refund_no"], ""),
            )  # fmt: skip
        for e in drained.journal:
            await cur.execute(
                "INSERT INTO journal VALUES (%s,%s,%s,%s,%s,%s)",
                (o["order_id"], e["v"], e["at"], e["what"], e["order_state"], Jsonb(e)),
            )
        ev, rc = event(drained), receipt(drained)
        await cur.execute(
            "INSERT INTO payment_events VALUES (%s,%s,%s,%s,%s,%s,%s)",
            (ev.event_id, o["service_point_id"], ev.kind, ev.at_ms, "", ev.order_id,
             ev.order_version),
        )  # fmt: skip
        await cur.execute(
            "INSERT INTO receipts VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
            (rc["receipt_code"], rc["receipt_no"], rc["order_id"], rc["status"],
             rc["total_fen"], 0, rc["issued_at"], Jsonb(rc)),
        )  # fmt: skip
    await conn.commit()

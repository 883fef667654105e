"""The audit chain end to end without Ray: a day of orders (paid, cancelled, refunded)
committed by the service-point core, drained to a real PostgreSQL, closed with signed
roots; then each tampering of the record is planted directly in PostgreSQL (or in the
exported roots) and `audit verify` must find it and name it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import tomli_w
from psycopg.types.json import Jsonb
from redis.asyncio import Redis

from orchestrator.audit.closer import DailyCloser
from orchestrator.audit.job import AlreadyClosed, NotClosable, close_day
from orchestrator.audit.roots import (
    ensure_audit_key,
    load_private_key,
    load_public_key,
    public_key_path,
    roots_file,
)
from orchestrator.audit.verify import Report, Verifier
from orchestrator.cli import main
from orchestrator.config import parse_config
from orchestrator.domain import ids
from orchestrator.domain.commands import CreateOrder, Done, RefundOrder
from orchestrator.metrics import AUDIT_DAY_NOT_CLOSED
from orchestrator.record.drainer import Drainer
from orchestrator.store import chain, keys
from tests.integration.test_record import (
    LINES,
    Office,
    caught_up,
    pool_of,
    record_data,
    running,
)
from tests.support import new_id


@dataclass
class Day:
    office: Office
    url: str
    day: date
    keys_dir: Path
    audit_dir: Path
    config_file: Path

    async def verify(self, *, redis: bool = True) -> Report:
        async with await psycopg.AsyncConnection.connect(self.url) as conn:
            verifier = Verifier(
                conn,
                redis=self.office.redis if redis else None,
                public_key=load_public_key(public_key_path(self.keys_dir)),
                audit_dir=self.audit_dir,
                service_points=self.office.points,
            )
            return await verifier.verify(self.day)

    async def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            cursor = await conn.execute(statement, params)
            return await cursor.fetchall() if cursor.description else []

    async def chain_rows(self, sp: str) -> list[tuple[Any, ...]]:
        """(chain_seq, order_id, version, entry) of the service point's day, in order."""
        return await self.sql(
            "SELECT chain_seq, order_id, version, entry FROM journal"
            " WHERE chain_day = %s AND service_point_id = %s ORDER BY chain_seq",
            self.day,
            sp,
        )


async def refund_some(office: Office, order_ids: list[str]) -> list[str]:
    """Refund part of the paid cash orders (at their window, where the cash is)."""
    refunded = []
    for order_id in order_ids:
        window = await _window_of(office, order_id)
        terminal = next(
            t for t, w in office.config.deployment.terminal_window.items() if w == window
        )
        [done] = await office.core.submit(
            [RefundOrder(new_id(), terminal, window, order_id, 500, "退费", "S1")]
        )
        assert isinstance(done, Done), done
        refunded.append(order_id)
    return refunded


async def _window_of(office: Office, order_id: str) -> str:
    snapshot = await office.redis.hget(keys.order(ids.service_point_of(order_id), order_id), "s")
    assert snapshot is not None
    return str(orjson.loads(snapshot)["window_id"])


@pytest.fixture
async def drained(redis: Redis, database_url: str, tmp_path: Path) -> AsyncIterator[Day]:
    """A day of orders in the record, not closed yet."""
    data = record_data(housekeeping_s=3600)
    config_file = tmp_path / "windowpay.toml"
    config_file.write_bytes(tomli_w.dumps(data).encode())
    office = Office(redis, parse_config(data, "audit test"))
    await office.core.start()
    try:
        ids = await office.day(10)
        paid = [order_id for n, order_id in enumerate(ids) if n % 5 in (0, 1, 2)]
        await refund_some(office, paid[:3])
        keys_dir = tmp_path / "keys"
        ensure_audit_key(keys_dir)
        async with pool_of(database_url) as pool:
            drainer = Drainer(office.redis, pool, office.config)
            async with running(drainer):
                await caught_up(drainer)
        day = Day(office, database_url, date.today(), keys_dir, tmp_path / "audit", config_file)
        [(chain_day,)] = await day.sql("SELECT DISTINCT chain_day FROM journal")
        day.day = chain_day
        yield day
    finally:
        await office.core.stop()


@pytest.fixture
async def closed(drained: Day) -> Day:
    async with await psycopg.AsyncConnection.connect(drained.url) as conn:
        await close_day(
            conn, load_private_key(drained.keys_dir), drained.day, drained.office.points,
            drained.audit_dir, drained.office.redis,
        )  # fmt: skip
    return drained


def kinds(report: Report) -> list[str]:
    return [f.kind for f in report.findings]


async def test_a_clean_day_verifies_and_the_command_exits_0(closed: Day) -> None:
    report = await closed.verify()
    assert report.findings == []
    assert report.entries >= 25
    totals = [report.totals[sp] for sp in closed.office.points]
    assert sum(t.payments for t in totals) == 6 and sum(t.refunds for t in totals) == 3
    assert sum(t.refunds_fen for t in totals) == 1500
    assert await asyncio.to_thread(main, _cli(closed)) == 0
    [(ok, findings)] = await closed.sql("SELECT ok, findings FROM audit_verifications")
    assert (ok, findings) == (True, 0)
    unreachable = [*_cli(closed)]
    unreachable[unreachable.index("--database-url") + 1] = "postgresql://127.0.0.1:1/none"
    assert await asyncio.to_thread(main, unreachable) == 2  # not 1: nothing was found


def _cli(day: Day, *more: str) -> list[str]:
    return [
        "audit", "verify", "--date", day.day.isoformat(), "--database-url", day.url,
        "--no-redis", "--config", str(day.config_file), "--audit-dir", str(day.audit_dir),
        "--public-key", str(public_key_path(day.keys_dir)), *more,
    ]  # fmt: skip


async def test_an_amount_changed_in_an_entry_is_named(closed: Day) -> None:
    sp = closed.office.points[0]
    seq, order_id, version, entry = next(
        r for r in await closed.chain_rows(sp) if r[3]["what"] == "attempt"
    )
    entry["attempt"]["amount_fen"] = 1
    await closed.sql(
        "UPDATE journal SET entry = %s WHERE order_id = %s AND version = %s",
        Jsonb(entry),
        order_id,
        version,
    )
    report = await closed.verify()
    first = report.findings[0]
    assert (first.kind, first.service_point) == ("ALTERED", sp)
    assert f"entry #{seq} (order {order_id} version {version})" in first.where
    assert "attempt 1 fen" in first.what
    assert await asyncio.to_thread(main, _cli(closed)) == 1


async def test_an_amount_changed_in_the_refunds_table_is_named(closed: Day) -> None:
    [(refund_id, order_id, amount)] = await closed.sql(
        "SELECT refund_id, order_id, amount_fen FROM refunds ORDER BY refund_id LIMIT 1"
    )
    await closed.sql("UPDATE refunds SET amount_fen = 50 WHERE refund_id = %s", refund_id)
    report = await closed.verify()
    assert kinds(report) == ["RECORD"]
    assert order_id in report.findings[0].where
    assert "the row says 50 fen by S1" in report.findings[0].what
    assert f"the chain says {amount} fen" in report.findings[0].what


async def test_a_deleted_refund_row_is_named(closed: Day) -> None:
    [(refund_id, order_id)] = await closed.sql(
        "SELECT refund_id, order_id FROM refunds ORDER BY refund_id LIMIT 1"
    )
    await closed.sql("DELETE FROM refunds WHERE refund_id = %s", refund_id)
    report = await closed.verify()
    assert kinds(report) == ["RECORD"]
    assert order_id in report.findings[0].where
    assert f"refund {refund_id} of 500 fen" in report.findings[0].what
    assert "has no refunds row: deleted" in report.findings[0].what


async def test_a_refund_deleted_with_its_journal_entries_is_named(closed: Day) -> None:
    [(refund_id, order_id)] = await closed.sql(
        "SELECT refund_id, order_id FROM refunds ORDER BY refund_id LIMIT 1"
    )
    gone = await closed.sql(
        "DELETE FROM journal WHERE order_id = %s AND entry->>'what' = 'refund'"
        " RETURNING chain_seq, service_point_id",
        order_id,
    )
    await closed.sql("DELETE FROM refunds WHERE refund_id = %s", refund_id)
    sp, last_gone = gone[0][1], max(seq for seq, _ in gone)
    after = await closed.sql(
        "SELECT 1 FROM journal WHERE service_point_id = %s AND chain_seq = %s", sp, last_gone + 1
    )
    report = await closed.verify(redis=False)
    first = report.findings[0]
    assert (first.kind, first.service_point) == ("MISSING", sp)
    if after:  # the chain goes on after the hole: the entry after it is named
        assert first.where.startswith(f"{len(gone)} entries before entry #{last_gone + 1} ")
    else:  # the day's last entries went: the signed root has them
        assert first.where == f"entry #{last_gone}"
    refunds = next(f for f in report.findings if f.where == "refunds_fen of the signed root")
    assert refunds.service_point == sp
    # Redis, while it still holds the order, names the entries themselves
    live = [f for f in (await closed.verify()).findings if "Redis still holds" in f.what]
    assert len(live) == len(gone) and all(f"order {order_id} " in f.where for f in live)


async def test_a_row_inserted_with_a_forged_hash_is_named(closed: Day) -> None:
    sp = closed.office.points[0]
    rows = await closed.chain_rows(sp)
    # a payment nobody made, linked after entry #3 with a hash computed the right way
    after = rows[2][3]
    forged: dict[str, Any] = {key: value for key, value in rows[4][3].items() if key != "chain"}
    forged["order"] = {**forged["order"], "id": f"{sp}-FORGED"}
    forged["v"] = 1
    at = chain.Head(3, after["chain"]["hash"])
    linked, head = chain.link(forged, sp, closed.day.isoformat(), at, after["chain"]["actor"])
    await closed.sql(
        "INSERT INTO journal (order_id, version, at_ms, what, order_state, entry, order_day,"
        " service_point_id, chain_day, chain_seq, prev_hash, entry_hash)"
        " VALUES (%s, 1, %s, %s, %s, %s, %s, %s, %s, 4, %s, %s)",
        f"{sp}-FORGED", linked["at"], linked["what"], linked["order_state"], Jsonb(linked),
        closed.day, sp, closed.day, linked["chain"]["prev"], head.hash,
    )  # fmt: skip
    report = await closed.verify(redis=False)
    first = report.findings[0]
    assert first.kind == "INSERTED" and f"order {sp}-FORGED" in first.where


async def test_two_entries_swapped_are_named(closed: Day) -> None:
    sp = closed.office.points[1]
    rows = await closed.chain_rows(sp)
    (_, a_order, a_version, _), (_, b_order, b_version, _) = rows[4], rows[5]
    await closed.sql(
        "UPDATE journal SET chain_seq = CASE WHEN order_id = %s AND version = %s THEN 6"
        " ELSE 5 END WHERE (order_id, version) IN ((%s, %s), (%s, %s))",
        a_order, a_version, a_order, a_version, b_order, b_version,
    )  # fmt: skip
    report = await closed.verify()
    first = report.findings[0]
    assert first.kind == "REORDERED" and first.service_point == sp
    assert f"order {b_order} version {b_version}" in first.where
    assert f"order {a_order} version {a_version}" in first.what


async def test_a_day_rewritten_with_a_consistent_new_chain_is_caught_by_the_signed_root(
    closed: Day,
) -> None:
    """Every row of a service point's day rewritten, a refund made smaller, each hash and
    link recomputed, the refunds row changed to match: only the signed root knows."""
    sp = closed.office.points[0]
    rows = await closed.chain_rows(sp)
    head = chain.Head()
    for _, order_id, version, entry in rows:
        content = {key: value for key, value in entry.items() if key != "chain"}
        if "refund" in content:
            content["refund"] = {**content["refund"], "amount_fen": 100}
        linked, head = chain.link(content, sp, closed.day.isoformat(), head,
                                  entry["chain"]["actor"])  # fmt: skip
        await closed.sql(
            "UPDATE journal SET entry = %s, prev_hash = %s, entry_hash = %s"
            " WHERE order_id = %s AND version = %s",
            Jsonb(linked), linked["chain"]["prev"], head.hash, order_id, version,
        )  # fmt: skip
    await closed.sql("UPDATE refunds SET amount_fen = 100 WHERE order_id LIKE %s", f"{sp}-%")
    report = await closed.verify(redis=False)  # the administrator rewrote what he could reach
    assert "ROOT" in kinds(report)
    assert not {"ALTERED", "MISSING", "INSERTED", "REORDERED", "RECORD"} & set(kinds(report))
    rewritten = next(f for f in report.findings if f.kind == "ROOT")
    assert rewritten.service_point == sp and "rewritten" in rewritten.what
    # and Redis, where it still holds the day, disagrees too
    assert "REDIS" in kinds(await closed.verify())


async def test_an_altered_root_file_is_named(closed: Day) -> None:
    path = roots_file(closed.audit_dir, closed.day)
    body = orjson.loads(path.read_bytes())
    statement = orjson.loads(body["roots"][0]["statement"])
    statement["refunds_fen"] = 0
    body["roots"][0]["statement"] = orjson.dumps(statement, option=orjson.OPT_SORT_KEYS).decode()
    path.write_bytes(orjson.dumps(body))
    report = await closed.verify()
    first = report.findings[0]
    assert first.kind == "ROOT" and first.where == "the signed root (file)"
    assert "signature does not verify" in first.what
    assert await asyncio.to_thread(main, _cli(closed)) == 1


async def test_a_day_is_not_closed_while_the_record_lags_behind_redis(drained: Day) -> None:
    closed = drained
    office = closed.office
    window = sorted(office.config.deployment.window_service_point)[0]
    [created] = await office.core.submit(
        [CreateOrder(new_id(), new_id("B"), window, "李四", LINES)]
    )
    assert isinstance(created, Done)
    async with await psycopg.AsyncConnection.connect(closed.url) as conn:
        with pytest.raises(NotClosable, match="REDIS"):
            await close_day(
                conn, load_private_key(closed.keys_dir), closed.day, office.points,
                closed.audit_dir, office.redis,
            )  # fmt: skip


async def test_the_drainer_closes_a_day_by_itself_once_it_has_ended(drained: Day) -> None:
    zone = drained.office.config.settings.zone
    after = datetime.combine(drained.day + timedelta(days=1), dt_time(0, 20), tzinfo=zone)
    clock = [int(after.timestamp() * 1000)]
    async with pool_of(drained.url) as pool:
        closer = DailyCloser(
            pool, drained.office.redis, drained.keys_dir, drained.audit_dir,
            drained.office.points, zone, now_ms=lambda: clock[0],
        )  # fmt: skip
        assert await closer.run_once(force=True) is None  # 00:20: not yet
        clock[0] += 15 * 60_000
        assert await closer.run_once(force=True) == drained.day
        assert await closer.run_once(force=True) is None  # closed once
    assert (await drained.verify()).findings == []
    # and verified at once: the outcome the console and the alerts go by
    assert await drained.sql("SELECT day, service_point_id, ok FROM audit_verifications") == [
        (drained.day, "", True)
    ]
    assert AUDIT_DAY_NOT_CLOSED._value.get() == 0


async def test_the_closer_reports_a_day_it_cannot_close(drained: Day) -> None:
    sp = await _drop_last_entry(drained)
    await drained.office.redis.delete(keys.chain_head(sp, drained.day.isoformat()))
    zone = drained.office.config.settings.zone
    morning = datetime.combine(drained.day + timedelta(days=1), dt_time(9), tzinfo=zone)
    async with pool_of(drained.url) as pool:
        closer = DailyCloser(
            pool, drained.office.redis, drained.keys_dir, drained.audit_dir,
            drained.office.points, zone, now_ms=lambda: int(morning.timestamp() * 1000),
        )  # fmt: skip
        assert await closer.run_once(force=True) is None
    assert AUDIT_DAY_NOT_CLOSED._value.get() == 1
    assert not roots_file(drained.audit_dir, drained.day).exists()


# ---- closing: a truncated chain is not signed, a signed day is never signed again --------


async def _close(day: Day, **more: Any) -> None:
    async with await psycopg.AsyncConnection.connect(day.url) as conn:
        await close_day(
            conn, load_private_key(day.keys_dir), day.day, day.office.points, day.audit_dir,
            day.office.redis, **more,
        )  # fmt: skip


async def _drop_last_entry(day: Day) -> str:
    """The DBA deletes the service point's last journal row of the day."""
    sp = day.office.points[0]
    _, order_id, version, _ = (await day.chain_rows(sp))[-1]
    await day.sql("DELETE FROM journal WHERE order_id = %s AND version = %s", order_id, version)
    return sp


async def test_close_refuses_to_sign_without_redis_when_redis_cannot_be_reached(
    drained: Day,
) -> None:
    await _drop_last_entry(drained)
    close = [
        "audit", "close", "--date", drained.day.isoformat(), "--database-url", drained.url,
        "--redis-url", "redis://127.0.0.1:1/0", "--config", str(drained.config_file),
        "--audit-dir", str(drained.audit_dir), "--data-dir", str(drained.keys_dir.parent),
    ]  # fmt: skip
    assert await asyncio.to_thread(main, close) == 2
    assert not roots_file(drained.audit_dir, drained.day).exists()
    assert await drained.sql("SELECT 1 FROM audit_roots") == []


async def test_a_chain_whose_redis_head_is_gone_is_not_signed(drained: Day) -> None:
    sp = await _drop_last_entry(drained)
    await drained.office.redis.delete(keys.chain_head(sp, drained.day.isoformat()))
    with pytest.raises(NotClosable, match="no head"):
        await _close(drained)
    assert not roots_file(drained.audit_dir, drained.day).exists()


async def test_a_day_that_has_not_ended_is_not_signed(drained: Day) -> None:
    zone = drained.office.config.settings.zone
    evening = datetime.combine(drained.day, dt_time(23, 50), tzinfo=zone)
    with pytest.raises(NotClosable, match="has not ended"):
        await _close(drained, zone=zone, now_ms=int(evening.timestamp() * 1000))
    assert not roots_file(drained.audit_dir, drained.day).exists()


async def test_a_closed_day_is_never_signed_again(closed: Day) -> None:
    path = roots_file(closed.audit_dir, closed.day)
    exported = path.read_bytes()
    stored = await closed.sql("SELECT * FROM audit_roots ORDER BY service_point_id")
    with pytest.raises(AlreadyClosed):
        await _close(closed)
    assert path.read_bytes() == exported
    assert await closed.sql("SELECT * FROM audit_roots ORDER BY service_point_id") == stored
    # The DBA removes the database copies: the file still says the day is closed.
    await closed.sql("DELETE FROM audit_roots")
    with pytest.raises(AlreadyClosed):
        await _close(closed)
    assert path.read_bytes() == exported
    assert await closed.sql("SELECT 1 FROM audit_roots") == []


async def test_the_closer_does_not_sign_again_a_day_whose_database_roots_were_deleted(
    closed: Day,
) -> None:
    path = roots_file(closed.audit_dir, closed.day)
    exported = path.read_bytes()
    sp = await _drop_last_entry(closed)
    head = chain.Head.decode(
        await closed.office.redis.get(keys.chain_head(sp, closed.day.isoformat()))
    )
    await closed.office.redis.set(
        keys.chain_head(sp, closed.day.isoformat()), chain.Head(head.n - 1, "x" * 64).encode()
    )
    await closed.sql("DELETE FROM audit_roots")
    zone = closed.office.config.settings.zone
    morning = datetime.combine(closed.day + timedelta(days=1), dt_time(9), tzinfo=zone)
    async with pool_of(closed.url) as pool:
        closer = DailyCloser(
            pool, closed.office.redis, closed.keys_dir, closed.audit_dir, closed.office.points,
            zone, now_ms=lambda: int(morning.timestamp() * 1000),
        )  # fmt: skip
        assert await closer.run_once(force=True) is None
    assert path.read_bytes() == exported
    assert await closed.sql("SELECT 1 FROM audit_roots") == []


# ---- verify: unreadable rows, versions, rows beside the chain, the archive, the roots -----


async def test_an_unreadable_entry_is_altered_and_the_outcome_is_kept(closed: Day) -> None:
    sp = closed.office.points[0]
    [(order_id, order_day)] = await closed.sql(
        "SELECT order_id, order_day FROM journal WHERE service_point_id = %s LIMIT 1", sp
    )
    await closed.sql(
        "INSERT INTO journal (order_id, version, at_ms, what, order_state, entry, order_day,"
        " service_point_id, chain_day, chain_seq, prev_hash, entry_hash)"
        " VALUES (%s, 500, 1, 'attempt', 'PAID', '{\"v\": 500}', %s, %s, %s, 88888, 'p', 'h')",
        order_id, order_day, sp, closed.day,
    )  # fmt: skip
    report = await closed.verify()
    unreadable = [f for f in report.findings if "unreadable entry" in f.what]
    assert [f.kind for f in unreadable] == ["ALTERED"]
    assert order_id in unreadable[0].where
    assert await asyncio.to_thread(main, _cli(closed)) == 1
    [(ok, first)] = await closed.sql("SELECT ok, first_finding FROM audit_verifications")
    assert ok is False and first


async def test_a_raised_order_version_does_not_hide_its_state(closed: Day) -> None:
    [(order_id,)] = await closed.sql(
        "SELECT order_id FROM refunds WHERE state = 'SUCCEEDED' ORDER BY order_id LIMIT 1"
    )
    await closed.sql(
        "UPDATE orders SET version = version + 100, state = 'PAID', refunded_fen = 0"
        " WHERE order_id = %s",
        order_id,
    )
    await closed.sql("UPDATE refunds SET state = 'FAILED' WHERE order_id = %s", order_id)
    await closed.sql("UPDATE attempts SET state = 'FAILED' WHERE order_id = %s", order_id)
    found = [f.what for f in (await closed.verify()).findings if order_id in f.where]
    assert any("orders.version" in what and "no journal entry" in what for what in found)
    assert any(what.startswith("orders.state is PAID") for what in found)
    assert any(what.startswith("orders.refunded_fen is 0") for what in found)
    assert any("the row is FAILED; the chain says SUCCEEDED" in what for what in found)


async def test_rows_beside_the_chain_are_named(closed: Day) -> None:
    [(order_id, attempt_id, order_day)] = await closed.sql(
        "SELECT order_id, attempt_id, order_day FROM attempts WHERE state = 'SUCCEEDED'"
        " AND order_id NOT IN (SELECT order_id FROM refunds) ORDER BY order_id LIMIT 1"
    )
    await closed.sql(
        "INSERT INTO refunds (refund_id, order_id, attempt_id, amount_fen, state, reason,"
        " supervisor_id, terminal_id, automatic, created_at_ms, finished_at_ms, finished_day,"
        " provider_refund_no, failure_reason, order_day)"
        " VALUES ('EXTRA-R', %s, %s, 9999, 'SUCCEEDED', '', 'S1', 'T', false, 1, 1, %s, '', '',"
        " %s)",
        order_id, attempt_id, closed.day, order_day,
    )  # fmt: skip
    await closed.sql(
        "INSERT INTO attempts SELECT 'EXTRA-A', order_id, channel, state, 777, terminal_id,"
        " request_id, created_at_ms, finished_at_ms, finished_day, provider_trade_no,"
        " failure_reason, follow_up, order_day FROM attempts WHERE attempt_id = %s",
        attempt_id,
    )
    await closed.sql(
        "INSERT INTO orders SELECT 'SPX-EXTRA', version, service_point_id, window_id,"
        " business_no || 'X', payer_name, 100000, state, catalog_version, created_at_ms,"
        " created_day, paid_at_ms, paid_day, paid_by, paid_channel, refunded_fen, snapshot"
        " FROM orders WHERE order_id = %s",
        order_id,
    )
    records = [f for f in (await closed.verify()).findings if f.kind == "RECORD"]
    assert any("refund EXTRA-R (9999 fen" in f.what for f in records), records
    assert any("attempt EXTRA-A (777 fen" in f.what for f in records), records
    assert any(f.where == "order SPX-EXTRA" and "no journal entry" in f.what for f in records)


async def test_an_archived_day_verifies_and_its_archive_is_checked(closed: Day) -> None:
    from orchestrator.record.partitions import archive

    async with await psycopg.AsyncConnection.connect(closed.url, autocommit=True) as conn:
        await archive(conn, closed.day + timedelta(days=1))
    assert await closed.sql("SELECT 1 FROM public.journal") == []
    assert (await closed.verify(redis=False)).findings == []
    [(refund_id,)] = await closed.sql(
        "SELECT refund_id FROM record_archive.refunds ORDER BY refund_id LIMIT 1"
    )
    await closed.sql(
        "UPDATE record_archive.refunds SET amount_fen = 1 WHERE refund_id = %s", refund_id
    )
    [finding] = (await closed.verify(redis=False)).findings
    assert finding.kind == "RECORD" and f"refund {refund_id}: the row says 1 fen" in finding.what


async def test_a_deleted_database_root_is_named_when_the_file_has_it(closed: Day) -> None:
    await closed.sql("DELETE FROM audit_roots")
    report = await closed.verify()
    assert {f.kind for f in report.findings} == {"ROOT"}
    assert all("database copy missing" in f.what for f in report.findings)
    assert len(report.findings) == len(closed.office.points)


async def test_verify_prints_the_key_fingerprint_and_refuses_a_key_other_than_the_pinned(
    closed: Day, capsys: pytest.CaptureFixture[str]
) -> None:
    import tomllib

    from orchestrator.audit.roots import fingerprint

    own = fingerprint(load_public_key(public_key_path(closed.keys_dir)))
    data = tomllib.loads(closed.config_file.read_text())
    data.setdefault("record", {})["audit_public_key_sha256"] = own
    closed.config_file.write_bytes(tomli_w.dumps(data).encode())
    assert await asyncio.to_thread(main, _cli(closed)) == 0
    assert f"audit public key sha256 {own} (pinned)" in capsys.readouterr().out

    # Whoever can write the keys directory swaps audit.pub for a key of his own.
    swapped = closed.keys_dir.parent / "swapped"
    ensure_audit_key(swapped)
    swapped_cli = [*_cli(closed)]
    swapped_cli[swapped_cli.index("--public-key") + 1] = str(public_key_path(swapped))
    assert await asyncio.to_thread(main, swapped_cli) == 2
    assert "the key file was replaced" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            "UPDATE attempts SET provider_trade_no = 'FORGED' WHERE attempt_id = ("
            "SELECT attempt_id FROM attempts WHERE state = 'SUCCEEDED' ORDER BY attempt_id"
            " LIMIT 1)",
            "attempts.provider_trade_no is 'FORGED'",
        ),
        (
            "UPDATE refunds SET reason = 'forged' WHERE refund_id = ("
            "SELECT refund_id FROM refunds ORDER BY refund_id LIMIT 1)",
            "refunds.reason is 'forged'",
        ),
        (
            "UPDATE orders SET payer_name = '王五' WHERE order_id = ("
            "SELECT order_id FROM orders ORDER BY order_id LIMIT 1)",
            "orders.payer_name is not the payer the chain hashed",
        ),
    ],
)
async def test_hashed_facts_beyond_the_amounts_are_compared(
    closed: Day, change: str, named: str
) -> None:
    await closed.sql(change)
    [finding] = (await closed.verify()).findings
    assert finding.kind == "RECORD" and named in finding.what

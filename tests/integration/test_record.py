"""The drainer against a real Redis, a real PostgreSQL (a throwaway cluster) and the
service-point core (no Ray): the record equals the journal after crashes, replays and a
database outage; Redis lets go of what the record holds."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import tomli_w
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from orchestrator.channels.inprocess import SandboxProvider
from orchestrator.cli import main
from orchestrator.config import Config, parse_config
from orchestrator.domain.calendar import local_day
from orchestrator.domain.catalog import RequestedLine
from orchestrator.domain.commands import CancelOrder, CreateOrder, Done, Pay, Rejected
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.ids import service_point_of
from orchestrator.domain.states import Channel
from orchestrator.embedded_redis import EmbeddedRedis
from orchestrator.receipts.issuer import ReceiptIssuer
from orchestrator.record import migrate
from orchestrator.record.consistency import compare
from orchestrator.record.drainer import GROUP, Drainer
from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.record.metrics import RECORD_DATABASE_UP, RECORD_LAG
from orchestrator.record.reader import RecordReader
from orchestrator.record.recorded_reads import RecordedReads
from orchestrator.record.streams import Entry
from orchestrator.sandbox.bank import SandboxBank, Timing
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.store import keys
from orchestrator.store.reads import RedisOrderReads
from orchestrator.store.redis_store import RedisStore
from tests.support import PROVIDER_CHANNELS, eventually, new_id, small_config_data, unique_prefix

LINES = (RequestedLine("PLT-AUTO", 1), RequestedLine("DOC-VLIC", 2))


def record_data(**record: Any) -> dict[str, Any]:
    data = small_config_data(prefix=unique_prefix(), service_points=2, windows=2)
    data["record"] = {"housekeeping_s": 0.2, **record}
    return data


def record_config(**record: Any) -> Config:
    return parse_config(record_data(**record), "record test")


class Office:
    """One core over the config's service points, and the commands a day brings."""

    def __init__(self, redis: Redis, config: Config) -> None:
        self.redis = redis
        self.config = config
        self.points = [sp.id for sp in config.deployment.service_points]
        banks = {
            ch: SandboxBank(ch.value, Timing(time_scale=config.settings.time_scale))
            for ch in PROVIDER_CHANNELS
        }
        self._providers = {ch: SandboxProvider(ch, banks[ch]) for ch in PROVIDER_CHANNELS}
        self.core = self._core()

    def _core(self) -> ServicePointCore:
        # The core never reads the record: a plain Redis store.
        return ServicePointCore(self.points, self.config, RedisStore(self.redis), self._providers)

    async def restart(self) -> None:
        """A new actor incarnation: nothing in memory, everything from Redis."""
        await self.core.stop()
        self.core = self._core()
        await self.core.start()

    async def day(self, orders: int) -> list[str]:
        """Orders at every window: most paid in cash, some cancelled, some left open."""
        ids = []
        windows = sorted(self.config.deployment.window_service_point)
        for n in range(orders):
            window = windows[n % len(windows)]
            [created] = await self.core.submit(
                [CreateOrder(new_id(), new_id("B"), window, "张三", LINES)]
            )
            assert isinstance(created, Done)
            order_id = orjson.loads(created.order)["order_id"]
            ids.append(order_id)
            sp = self.config.deployment.window_service_point[window]
            terminal = next(
                t for t, w in self.config.deployment.terminal_window.items() if w == window
            )
            if n % 5 == 3:
                [done] = await self.core.submit([CancelOrder(new_id(), order_id, "withdrawn")])
            elif n % 5 != 4:
                [done] = await self.core.submit(
                    [Pay(new_id(), terminal, window, order_id, Channel.CASH, "", 20000)]
                )
            else:
                continue
            assert isinstance(done, Done), (sp, done)
        return ids


@pytest.fixture
async def office(redis: Redis) -> AsyncIterator[Office]:
    office = Office(redis, record_config())
    await office.core.start()
    yield office
    await office.core.stop()


def pool_of(url: str) -> AsyncConnectionPool:
    return AsyncConnectionPool(url, min_size=1, max_size=2, open=False)


@asynccontextmanager
async def running(drainer: Drainer) -> AsyncIterator[Drainer]:
    """The drainer in the background, stopped (and awaited) however the test ends."""
    task = asyncio.create_task(drainer.run())
    try:
        yield drainer
    finally:
        drainer.stop()
        await asyncio.wait_for(task, 30)


async def caught_up(drainer: Drainer) -> None:
    async def backlog() -> int:
        await drainer.measure()
        return drainer.backlog

    await eventually(backlog, lambda n: n == 0, within=60)


async def equal(office: Office, url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        result = await compare(office.redis, conn, office.points)
    assert result.differences == []
    assert result.orders_in_redis == result.orders_in_record > 0


async def journal_rows(url: str) -> tuple[int, int]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = await (await conn.execute("SELECT count(*) FROM journal")).fetchone()
        versions = await (await conn.execute("SELECT sum(version) FROM orders")).fetchone()
    assert rows is not None and versions is not None
    return int(rows[0]), int(versions[0])


@pytest.fixture
async def untrimmed(redis: Redis) -> AsyncIterator[Office]:
    """An office whose streams the drainer does not trim (within a test's time)."""
    office = Office(redis, record_config(housekeeping_s=3600))
    await office.core.start()
    yield office
    await office.core.stop()


async def test_the_record_equals_the_journal_and_a_replay_changes_nothing(
    untrimmed: Office, database_url: str
) -> None:
    office = untrimmed
    await office.day(20)
    async with pool_of(database_url) as pool:
        drainer = Drainer(office.redis, pool, office.config)
        async with running(drainer):
            await caught_up(drainer)
            await equal(office, database_url)
            rows, versions = await journal_rows(database_url)
            assert rows == versions  # one journal row per version, none twice
        # Everything handed over again from the start of the streams: nothing changes.
        for stream in drainer._reader.streams:
            await office.redis.xgroup_setid(stream, GROUP, "0")
        again = Drainer(office.redis, pool, office.config)
        async with running(again):
            await caught_up(again)
        assert again.drained_orders > 0
        await equal(office, database_url)
        assert await journal_rows(database_url) == (rows, versions)


async def test_a_crash_after_writing_and_before_acknowledging_is_replayed(
    office: Office, database_url: str
) -> None:
    await office.day(15)
    async with pool_of(database_url) as pool:
        crashing = Drainer(office.redis, pool, office.config)

        async def crash(entries: list[Entry]) -> None:
            raise asyncio.CancelledError  # the process dies here: written, not acked

        crashing._reader.ack = crash  # type: ignore[method-assign,assignment]
        with pytest.raises(asyncio.CancelledError):
            await crashing.run()
        await crashing.measure()
        assert crashing.backlog > 0  # delivered, written, still pending
        await office.day(5)  # and the office went on meanwhile
        restarted = Drainer(office.redis, pool, office.config)
        async with running(restarted):
            await caught_up(restarted)
    await equal(office, database_url)
    rows, versions = await journal_rows(database_url)
    assert rows == versions


@contextmanager
def own_postgres() -> Iterator[tuple[EmbeddedPostgres, str]]:
    """A cluster of the test's own, with the record's schema, to stop and start again
    (the session's cluster stays up for the other tests); with its URL."""
    root = Path(tempfile.mkdtemp(prefix="windowpay-pg-down-"))
    root.chmod(0o755)
    postgres = EmbeddedPostgres(root)
    url = postgres.start()
    try:
        migrate.upgrade(url)
        yield postgres, url
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def reconnecting_pool(url: str) -> AsyncConnectionPool:
    """A pool that checks its connections: it finds a restarted PostgreSQL again."""
    return AsyncConnectionPool(
        url, min_size=1, max_size=2, open=False, check=AsyncConnectionPool.check_connection
    )


async def test_payments_go_on_while_postgres_is_down_and_the_record_catches_up(
    office: Office,
) -> None:
    with own_postgres() as (postgres, url):
        async with (
            reconnecting_pool(url) as pool,
            running(Drainer(office.redis, pool, office.config)) as drainer,
        ):
            await office.day(5)
            await caught_up(drainer)
            postgres.stop()
            loop = asyncio.get_running_loop()
            down_until = loop.time() + 20.0
            paid_meanwhile = 0
            while loop.time() < down_until:  # 20 s of traffic; each command asserts success
                paid_meanwhile += len(await office.day(5))
            assert paid_meanwhile > 0
            await drainer.measure()
            assert drainer.lag_s >= 15.0 and drainer.backlog > 0
            assert RECORD_LAG._value.get() == drainer.lag_s  # what the alert reads
            assert RECORD_DATABASE_UP._value.get() == 0
            postgres.start()
            await caught_up(drainer)
            assert drainer.lag_s == 0.0
        await equal(office, url)


async def _measured(drainer: Drainer) -> Drainer:
    await drainer.measure()
    return drainer


async def test_final_orders_leave_redis_after_the_retention_and_are_read_from_the_record(
    redis: Redis, database_url: str
) -> None:
    office = Office(redis, record_config(retention_s=1.5))
    await office.core.start()
    try:
        ids = await office.day(5)  # 0-2 paid, 3 cancelled, 4 left open
        async with pool_of(database_url) as pool:
            drainer = Drainer(redis, pool, office.config)
            async with running(drainer):
                await caught_up(drainer)
                sp = service_point_of(ids[0])
                assert 0 < await redis.pttl(keys.order(sp, ids[0])) <= 1500
                paid = orjson.loads(await redis.hget(keys.order(sp, ids[0]), "s"))  # type: ignore[arg-type]
                again = CreateOrder(new_id(), paid["business_no"], paid["window_id"], "张三", LINES)
                [same] = await office.core.submit([again])  # still in Redis: the same order
                assert isinstance(same, Done) and orjson.loads(same.order)["order_id"] == ids[0]
                assert await redis.pttl(keys.order(service_point_of(ids[4]), ids[4])) == -1
                await eventually(
                    lambda: redis.exists(keys.order(sp, ids[0])), lambda n: n == 0, within=60
                )
                await eventually(
                    lambda: redis.exists(keys.journal(sp, ids[0])), lambda n: n == 0, within=60
                )
                store = RecordedReads(RedisOrderReads(redis), RecordReader(pool))
                old = await store.order(ids[0])
                assert old is not None and orjson.loads(old)["state"] == "PAID"
                assert await redis.exists(keys.order(sp, ids[4])) == 1  # open: kept
                # The case stays taken: no second payable order for a case paid long ago.
                await office.restart()
                again = CreateOrder(new_id(), paid["business_no"], paid["window_id"], "张三", LINES)
                [refused] = await office.core.submit([again])
                assert isinstance(refused, Rejected)
                assert refused.code is ErrorCode.FAILED_PRECONDITION and ids[0] in refused.message
                assert await store.order_of_case(paid["business_no"]) == old
                # Settlement and reconciliation: the day's orders from the record, with
                # Redis's newer copies; the one that left Redis is there.
                today = local_day(int(time.time() * 1000), office.config.settings.zone)
                day = await store.orders_of_days(office.points, [today.strftime("%Y%m%d")])
                assert {o["order_id"] for o in day} >= set(ids)
                # Acknowledged by every reader and past the retention: the streams are trimmed.
                await eventually(lambda: redis.xlen(keys.outbox(sp)), lambda n: n == 0, within=30)
                assert await redis.xlen(keys.changes(sp)) == 0
    finally:
        await office.core.stop()


async def test_an_outbox_reader_that_has_not_acknowledged_holds_the_trim_back(
    office: Office, database_url: str
) -> None:
    sp = office.points[0]
    await office.redis.xgroup_create(keys.outbox(sp), "slow-subscriber", id="0", mkstream=True)
    await office.day(6)
    async with pool_of(database_url) as pool:
        drainer = Drainer(office.redis, pool, office.config)
        drainer.retention_ms = 0
        async with running(drainer):
            await caught_up(drainer)
            before = await office.redis.xlen(keys.outbox(sp))
            assert before > 0
            await drainer.trim()
            assert await office.redis.xlen(keys.outbox(sp)) == before


async def test_a_drainer_killed_mid_batch_leaves_no_trace_after_its_restart(
    redis: Redis, redis_server: EmbeddedRedis, database_url: str, tmp_path: Path
) -> None:
    data = record_data(drain_batch=10)
    office = Office(redis, parse_config(data, "kill test"))
    await office.core.start()
    try:
        ids = await office.day(150)
    finally:
        await office.core.stop()
    config_file = tmp_path / "windowpay.toml"
    config_file.write_text(tomli_w.dumps(data))
    command = [
        sys.executable, "-m", "orchestrator.cli", "drain", "--config", str(config_file),
        "--redis-url", redis_server.url, "--database-url", database_url,
        "--data-dir", str(tmp_path),
    ]  # fmt: skip

    watching = await psycopg.AsyncConnection.connect(database_url, autocommit=True)

    async def recorded() -> int:  # one connection, so that the kill follows the first rows
        row = await (await watching.execute("SELECT count(*) FROM orders")).fetchone()
        return int(row[0]) if row else 0

    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    first = await asyncio.create_subprocess_exec(*command, **quiet)  # type: ignore[arg-type]
    try:
        await eventually(recorded, lambda n: n > 0, every=0.005, within=60)
    finally:
        first.send_signal(signal.SIGKILL)  # kill -9, in the middle of the batches
        await first.wait()
    assert await recorded() < len(ids)  # it was cut short
    second = await asyncio.create_subprocess_exec(*command, **quiet)  # type: ignore[arg-type]
    try:
        await eventually(recorded, lambda n: n == len(ids), within=60)
        async with pool_of(database_url) as pool:
            await caught_up(Drainer(redis, pool, office.config))
    finally:
        second.terminate()
        await asyncio.wait_for(second.wait(), 30)
    await watching.close()
    await equal(office, database_url)
    rows, versions = await journal_rows(database_url)
    assert rows == versions


async def test_report_totals_come_from_the_record(
    office: Office, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await office.day(10)  # 6 paid in cash (12000 fen each), 2 cancelled, 2 open
    async with pool_of(database_url) as pool:
        drainer = Drainer(office.redis, pool, office.config)
        async with running(drainer):
            await caught_up(drainer)
    today = local_day(int(time.time() * 1000), office.config.settings.zone).date().isoformat()
    by = "service_point,channel,fee_item"
    args = ["report", "--from", today, "--by", by, "--database-url", database_url, "--json"]
    assert await asyncio.to_thread(main, args) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    mine = [r for r in rows if r["service_point"] in office.points]
    paid = len([i for n, i in enumerate(ids) if n % 5 < 3])
    assert {r["fee_item"] for r in mine} == {"PLT-AUTO", "DOC-VLIC"}
    assert {r["channel"] for r in mine} == {"CASH"}
    assert sum(r["payments_fen"] for r in mine) == paid * 12000
    assert sum(r["payments"] for r in mine if r["fee_item"] == "PLT-AUTO") == paid
    args = ["report", "--from", today, "--by", "window", "--database-url", database_url, "--json"]
    assert await asyncio.to_thread(main, args) == 0
    windows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    mine = [r for r in windows if r["window"].startswith(tuple(office.points))]
    assert sum(r["payments"] for r in mine) == paid
    assert sum(r["payments_fen"] for r in mine) == paid * 12000


@pytest.fixture
async def own_office(tmp_path: Path) -> AsyncIterator[Office]:
    """An office on a Redis of its own: the receipts' change stream is one per Redis, and
    the session's e2e deployment keeps a drainer reading the shared one."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    client = Redis.from_url(server.url)
    office = Office(client, record_config())
    await office.core.start()
    try:
        yield office
    finally:
        await office.core.stop()
        await client.aclose()
        server.stop()


async def test_receipts_reach_the_record_and_then_carry_the_retention(
    own_office: Office, database_url: str
) -> None:
    office = own_office
    ids = await office.day(10)  # 6 paid
    issuer = ReceiptIssuer(office.redis, office.config, b"k" * 32)
    issuing = asyncio.create_task(issuer.run())
    try:
        await eventually(lambda: asyncio.sleep(0, issuer.issued), lambda n: n == 6, within=60)
    finally:
        issuer.stop()
        await asyncio.wait_for(issuing, 30)
    async with pool_of(database_url) as pool, running(Drainer(office.redis, pool, office.config)):
        reader = RecordReader(pool)
        for order_id in (ids[0], ids[1], ids[2]):
            stored = await eventually(
                lambda o=order_id: reader.receipt_of_order(o), bool, within=60
            )
            assert stored is not None
            receipt = orjson.loads(stored)
            assert receipt["order_id"] == order_id and receipt["status"] == "ISSUED"
            number = f"wp:{{receipts}}:r:{receipt['receipt_code']}:{receipt['receipt_no']}"
            ttl = await eventually(
                lambda n=number: office.redis.pttl(n), lambda t: t > 0, within=60
            )
            assert ttl <= 604_800_000 * office.config.settings.time_scale
        assert await reader.receipt_of_order(ids[3]) is None  # cancelled: no receipt

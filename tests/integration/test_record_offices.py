"""An order made at a window of city B's site carries city B's office into Redis, into its
receipt and into the PostgreSQL record, where `windowpay report --office` finds it for
B and not for A: a real Redis of the test's own, the service-point core (no Ray), the
drainer and the receipt issuer against a throwaway PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
from pathlib import Path

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
from orchestrator.domain.commands import CreateOrder, Done, Pay
from orchestrator.domain.states import Channel
from orchestrator.receipts.issuer import ReceiptIssuer
from orchestrator.record.drainer import Drainer
from orchestrator.record.reader import OfficeFilter, RecordReader
from orchestrator.sandbox.bank import SandboxBank, Timing
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.store.redis_store import RedisStore
from tests.support import (
    PROVIDER_CHANNELS,
    eventually,
    new_id,
    small_config_data,
    two_offices,
    unique_prefix,
)

LINES = (RequestedLine("PLT-AUTO", 1),)  # 10000 fen


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """Service points P1 (office PA) and P2, P3 (office PB), as a file for the CLI."""
    data = two_offices(small_config_data(prefix=unique_prefix(), service_points=3, windows=1))
    data["record"] = {"housekeeping_s": 0.2}
    path = tmp_path / "windowpay.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


async def paid_order(core: ServicePointCore, config: Config, window: str) -> str:
    [created] = await core.submit([CreateOrder(new_id(), new_id("B"), window, "张三", LINES)])
    assert isinstance(created, Done), created
    order_id: str = orjson.loads(created.order)["order_id"]
    terminal = next(t for t, w in config.deployment.terminal_window.items() if w == window)
    [paid] = await core.submit([Pay(new_id(), terminal, window, order_id, Channel.CASH, "", 20000)])
    assert isinstance(paid, Done), paid
    return order_id


async def test_an_order_of_city_bs_site_is_bs_in_redis_and_in_the_record(
    config_file: Path,
    own_redis: Redis,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = parse_config(tomllib.loads(config_file.read_text()), "offices")
    points = [sp.id for sp in config.deployment.service_points]
    prefix = points[0][:-1]
    office_a, office_b = f"{prefix}A", f"{prefix}B"
    banks = {
        ch: SandboxBank(ch.value, Timing(time_scale=config.settings.time_scale))
        for ch in PROVIDER_CHANNELS
    }
    providers = {ch: SandboxProvider(ch, banks[ch]) for ch in PROVIDER_CHANNELS}
    core = ServicePointCore(points, config, RedisStore(own_redis), providers)
    await core.start()
    try:
        at_b = await paid_order(core, config, f"{prefix}3W1")
        at_a = await paid_order(core, config, f"{prefix}1W1")
    finally:
        await core.stop()

    # Redis: the order's snapshot names its office and site.
    held = await RedisStore(own_redis).order(at_b)
    assert held is not None
    snapshot = orjson.loads(held)
    assert (snapshot["office_id"], snapshot["site_id"]) == (office_b, f"{prefix}3S")

    issuer = ReceiptIssuer(own_redis, config, b"k" * 32)
    issuing = asyncio.create_task(issuer.run())
    try:
        await eventually(lambda: asyncio.sleep(0, issuer.issued), lambda n: n == 2, within=60)
    finally:
        issuer.stop()
        await asyncio.wait_for(issuing, 30)

    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
        drainer = Drainer(own_redis, pool, config)
        task = asyncio.create_task(drainer.run())
        try:
            reader = RecordReader(pool)
            receipt = await eventually(lambda: reader.receipt_of_order(at_b), bool, within=60)
            assert receipt is not None
            assert orjson.loads(receipt)["office_id"] == office_b
            await eventually(lambda: reader.order(at_a), bool, within=60)
        finally:
            drainer.stop()
            await asyncio.wait_for(task, 30)

        # The record: the order's row has its office and site as columns.
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            cur = await conn.execute(
                "SELECT order_id, office_id, site_id FROM orders ORDER BY office_id"
            )
            rows = await cur.fetchall()
        assert rows == [(at_a, office_a, f"{prefix}1S"), (at_b, office_b, f"{prefix}3S")]

        today = local_day(int(time.time() * 1000), config.settings.zone).date()
        of_b = OfficeFilter(office_b, (f"{prefix}2", f"{prefix}3"))
        of_a = OfficeFilter(office_a, (f"{prefix}1",))
        found = await reader.report(today, today, ["office", "service_point"], of_b)
        assert [(r.key, r.payments, r.payments_fen) for r in found] == [
            ({"office": office_b, "service_point": f"{prefix}3"}, 1, 10000)
        ]
        found = await reader.report(today, today, ["service_point"], of_a)
        assert [(r.key["service_point"], r.payments) for r in found] == [(f"{prefix}1", 1)]

    # The same through `windowpay report --office`, which reads the offices from the config.
    common = ["--from", today.isoformat(), "--database-url", database_url]
    common += ["--config", str(config_file), "--by", "office,site"]
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["report", *common, "--office", office_b, "--json"]) == 0
    rows_b = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["office"], r["site"], r["payments"]) for r in rows_b] == [
        (office_b, f"{prefix}3S", 1)
    ]
    assert await asyncio.to_thread(main, ["report", *common, "--office", office_a, "--json"]) == 0
    rows_a = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["office"], r["payments"]) for r in rows_a] == [(office_a, 1)]
    assert await asyncio.to_thread(main, ["report", *common, "--office", "ZZ"]) == 2
    assert f"unknown office 'ZZ'; {config_file} has '{office_a}', '{office_b}'" in (
        capsys.readouterr().err
    )

    # A row written before orders carried their office is its service point's office's.
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("UPDATE orders SET office_id = '' WHERE order_id = %s", (at_b,))
        await conn.commit()
    async with AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False) as pool:
        reader = RecordReader(pool)
        by_b = await reader.report(today, today, ["service_point"], of_b)
        by_a = await reader.report(today, today, ["service_point"], of_a)
    assert [r.key["service_point"] for r in by_b] == [f"{prefix}3"]
    assert [r.key["service_point"] for r in by_a] == [f"{prefix}1"]

"""A power cut under PostgreSQL while the record writer writes paid orders (invariant 4
for the record).

The cluster's data directory is on the volatile filesystem (volatile.py). Writers put
paid orders (real domain orders: snapshot and journal) into the record through
RecordWriter, one transaction each; its commit returning is the acknowledgement. At the
first acknowledgement after CUT_AFTER_S every PostgreSQL process is killed -9, the
writes not fsync'd are dropped, and the cluster starts again and recovers from its WAL.

With `synchronous_commit = on` nothing acknowledged may be missing. The negative control
runs the same test on a cluster with `fsync = off`: a commit still writes its WAL before
it answers, so a kill -9 alone would lose nothing, but the WAL is never synced: the cut
must lose acknowledged orders, proof that the test can fail and that the cut is real."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import AsyncConnection

from orchestrator.domain.catalog import FeeCategory, PricedLine
from orchestrator.domain.order import Order
from orchestrator.domain.states import AttemptEvent, Channel
from orchestrator.record import migrate
from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.record.writer import DrainedOrder, RecordWriter
from tests.faults.powercut.cutting import CUT_AFTER_S, until_the_cut
from tests.faults.powercut.disk import VolatileDisk
from tests.support import nonce, small_config

WRITERS = 4
NOW = 1_800_000_000_000
LINES = (PricedLine("EXM-K1", "科目一", "次", FeeCategory.EXAM, 1, 8000, 8000),)


def paid_order() -> DrainedOrder:
    """A paid order as the drainer hands it over: the snapshot and every journal entry."""
    order, created = Order.create(
        order_id=f"PC1-{uuid.uuid4().hex[:14].upper()}", business_no=f"B{uuid.uuid4().hex}",
        service_point_id="PC1", window_id="PC1W1", payer_name="周八", lines=LINES,
        catalog_version="2024-01", now=NOW, expires_at=NOW + 3_600_000,
    )  # fmt: skip
    attempt_id = order.next_attempt_id(nonce())
    started = order.start_attempt(
        attempt_id=attempt_id, channel=Channel.ALIPAY, terminal_id="PC1T1", request_id="r",
        now=NOW + 1,
    )  # fmt: skip
    paid = order.record_attempt(attempt_id, AttemptEvent.PAID, NOW + 2, trade_no="T1")
    return DrainedOrder(order.to_record(), [c.to_record() for c in (created, started, paid)])


class Cluster:
    """A throwaway cluster whose data directory is moved onto a volatile disk."""

    def __init__(
        self, root: Path, volatile: Callable[[Path, Path], VolatileDisk], fsync: bool
    ) -> None:
        self.server = EmbeddedPostgres(root)
        self.url = self.server.start()  # initdb on the real disk: quicker
        migrate.upgrade(self.url)
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET fsync = {'on' if fsync else 'off'}")
        self.server.stop()
        data = self.server.data
        data.rename(data.with_name("data.disk"))
        data.mkdir()
        self.disk = volatile(data.with_name("data.disk"), data)
        self.server.start()

    def crash(self) -> None:
        """kill -9 of the postmaster and every process of it, as a power cut does."""
        pid = int((self.server.data / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        processes = [postmaster, *postmaster.children(recursive=True)]
        for process in processes:
            process.kill()
        psutil.wait_procs(processes, timeout=30)
        assert not self.server.running  # reaps the child


async def write_until_cut(url: str, acked: list[str], cut: Callable[[], None]) -> None:
    writer = RecordWriter(small_config().settings.zone)
    loop = asyncio.get_running_loop()
    started = loop.time()
    conn: AsyncConnection[Any] = await AsyncConnection.connect(url, autocommit=True)
    try:
        await conn.execute("SET synchronous_commit = on")
        while True:
            drained = paid_order()
            await writer.write(conn, [drained])
            acked.append(drained.snapshot["order_id"])
            if loop.time() - started >= CUT_AFTER_S:
                cut()
                return
    finally:
        await conn.close()


async def power_cut(
    root: Path, volatile: Callable[[Path, Path], VolatileDisk], fsync: bool
) -> tuple[list[str], list[str]]:
    """(acknowledged orders, those the record lost) after one cut."""
    root.mkdir(mode=0o755)
    cluster = Cluster(root, volatile, fsync)
    acked: list[str] = []
    done = asyncio.Event()

    def cut() -> None:
        if not done.is_set():
            cluster.crash()
            done.set()

    try:
        writers = [
            asyncio.create_task(write_until_cut(cluster.url, acked, cut)) for _ in range(WRITERS)
        ]
        await until_the_cut(done, writers)
        dropped = cluster.disk.cut()
        lock = cluster.server.data / "postmaster.pid"
        if not fsync and lock.stat().st_size == 0:
            lock.unlink()  # never synced either: removed, as PostgreSQL's hint says to
        cluster.server.start()
        with psycopg.connect(cluster.url) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("on" if fsync else "off",)
            rows = conn.execute(
                "SELECT o.order_id, o.version, o.state, count(j.version) FROM orders o "
                "LEFT JOIN journal j USING (order_id) WHERE o.order_id = ANY(%s) "
                "GROUP BY o.order_id, o.version, o.state",
                (acked,),
            ).fetchall()
    finally:
        cluster.server.stop()
    kept = {
        order_id
        for order_id, version, state, entries in rows
        if (version, state, entries) == (3, "PAID", 3)
    }
    lost = [order_id for order_id in acked if order_id not in kept]
    print(
        f"\nfsync {'on' if fsync else 'off'}: {len(acked)} orders acknowledged, "
        f"{len(lost)} lost; the cut dropped {dropped[1]} unsynced pages"
    )
    return acked, lost


async def test_synchronous_commit_keeps_every_acknowledged_order(
    power_root: Path, volatile: Callable[[Path, Path], VolatileDisk]
) -> None:
    acked, lost = await power_cut(power_root / "cut", volatile, fsync=True)
    assert len(acked) >= 20, "too few orders to prove anything"
    assert lost == []


async def test_unsynced_wal_loses_acknowledged_orders(
    power_root: Path, volatile: Callable[[Path, Path], VolatileDisk]
) -> None:
    """The negative control: commits whose WAL is written, never synced."""
    acked, lost = await power_cut(power_root / "cut", volatile, fsync=False)
    assert lost != [], f"fsync off lost none of {len(acked)} acknowledged orders"

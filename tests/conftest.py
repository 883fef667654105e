"""Fixtures shared by the integration and e2e tiers (unit tests request none of them), and
how the suite is spread over pytest-xdist's workers (docs/TESTING.md)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from xdist.remote import Producer
from xdist.scheduler import Scheduling
from xdist.workermanage import WorkerController

from orchestrator.embedded_redis import EmbeddedRedis
from orchestrator.record import migrate
from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.store.connect import connect
from tests import grouping
from tests.redis_cluster import RedisCluster


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    grouping.mark_and_order(items)


@pytest.hookimpl(tryfirst=True)  # before an xdist worker sends its collection
def pytest_collection_finish(session: pytest.Session) -> None:
    grouping.tell_controller(session)


def pytest_configure_node(node: WorkerController) -> None:
    grouping.configure_node(node)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> Scheduling | None:
    return grouping.scheduler(config, log)


def pytest_unconfigure(config: pytest.Config) -> None:
    grouping.clean_up(config)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A private redis-server with append-only persistence on a free port, bounded like
    the embedded one of `windowpay serve` (maxmemory, noeviction)."""
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")), maxmemory_mb=1024)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[Redis]:
    """A Redis of its own: the receipts' change stream is one per Redis, and the
    session's e2e deployment keeps a drainer reading the shared one."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    client = Redis.from_url(server.url)
    try:
        yield client
    finally:
        await client.aclose()
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A Redis Cluster of the session: 3 masters with a replica each (tests/redis_cluster.py)."""
    cluster = RedisCluster(Path(tmp_path_factory.mktemp("redis-cluster")) / "nodes")
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def cluster_redis(redis_cluster: RedisCluster) -> AsyncIterator[Redis]:
    """A client of the session's cluster, as windowpay opens one (store/connect.py)."""
    client = connect(redis_cluster.url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres]:
    """A throwaway PostgreSQL cluster of the session (never the machine's shared one).
    Under a directory of its own that the postgres user may enter when we are root."""
    root = Path(tempfile.mkdtemp(prefix="windowpay-pg-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(postgres_server: EmbeddedPostgres) -> Iterator[str]:
    """A fresh database with the record's schema, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    migrate.upgrade(url)
    yield url
    if postgres_server.running:
        postgres_server.drop_database(name)

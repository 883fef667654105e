"""Fixtures shared by the integration and e2e tiers. Unit tests request none of them."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from orchestrator.embedded_redis import EmbeddedRedis
from orchestrator.record import migrate
from orchestrator.record.embedded import EmbeddedPostgres


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A private redis-server with append-only persistence on a free port."""
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
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

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

from orchestrator.embedded_redis import EmbeddedRedis
from orchestrator.record import migrate
from orchestrator.record.embedded import EmbeddedPostgres

# Each xdist worker is a pytest session of its own, with its own session fixtures: a test
# that shares a deployment with others must run in the worker that started it. These
# fixtures start one (Ray and the front door in-process; a served `windowpay serve`).
SHARED_DEPLOYMENTS = {"deployed": "e2e-deployment", "stack": "fault-stack"}
# Longest first, so that no long group starts last: the fault tier's served deployment,
# then the e2e deployment, then the rest of those two tiers, the integration tier, and the
# short tests last.
LONGEST_FIRST = (
    "fault-stack", "e2e-deployment", "tests/faults/", "tests/e2e/", "tests/integration/"
)  # fmt: skip


def _group(item: pytest.Item) -> str | None:
    """The xdist group of `item`: the deployment it shares, else the module (or package)
    whose own module- or package-scoped fixture it uses, so that such a fixture is made
    once. None for a test that may run in any worker."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    for fixture, group in SHARED_DEPLOYMENTS.items():
        if fixture in info.names_closure:
            return group
    for name in info.names_closure:
        definitions = info.name2fixturedefs.get(name, ())
        if definitions and definitions[-1].scope in ("module", "package"):
            return definitions[-1].baseid or None
    return None


def _rank(item: pytest.Item, group: str | None) -> tuple[int, bool]:
    where = group if group in SHARED_DEPLOYMENTS.values() else item.nodeid
    rank = next((i for i, p in enumerate(LONGEST_FIRST) if where.startswith(p)), len(LONGEST_FIRST))
    # Load smoke runs go last in their group: they leave the shared deployment's day busy.
    return rank, item.get_closest_marker("load") is not None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    groups: dict[str, str | None] = {}
    for item in items:
        group = groups[item.nodeid] = _group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: _rank(item, groups[item.nodeid]))


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

"""The service-point actor: a thin shell around ServicePointCore.

Ray restarts it when it dies; its constructor then takes the service points over again
and resumes every unfinished attempt from Redis. With a record (PostgreSQL), a refund of
an order that has left Redis recalls it from there (orchestrator/servicepoint/recall.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from prometheus_client import REGISTRY
from psycopg_pool import AsyncConnectionPool

from actors.direct import DirectServer
from orchestrator.channels.factory import build_providers
from orchestrator.config import Config
from orchestrator.domain.commands import Command, Result
from orchestrator.metrics import start_at_zero
from orchestrator.providers.notices import Notice, NoticeOutcome
from orchestrator.record.reader import RecordReader
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.servicepoint.telemetry import InFlightCollector
from orchestrator.store.connect import connect
from orchestrator.store.redis_store import RedisStore
from orchestrator.store.replication import replication_for
from orchestrator.telemetry import announce, configure_logging, serve_metrics

log = logging.getLogger(__name__)


class ServicePointActor:
    def __init__(
        self,
        service_points: Sequence[str],
        config: Config,
        redis_url: str,
        keys_dir: str,
        database_url: str | None = None,
    ) -> None:
        configure_logging(config.settings.log_level)
        self._redis = connect(redis_url)
        self._providers = build_providers(config, Path(keys_dir))
        loop = asyncio.get_running_loop()
        record = None
        if database_url:
            # Read only for orders that have left Redis: no connection until one is asked.
            pool: AsyncConnectionPool = AsyncConnectionPool(
                database_url, min_size=0, max_size=2, open=False,
                check=AsyncConnectionPool.check_connection,
            )  # fmt: skip
            self._opening = loop.create_task(pool.open(wait=False))
            record = RecordReader(pool)
        self._core = ServicePointCore(
            service_points,
            config,
            RedisStore(
                self._redis,
                replication_for(
                    self._redis,
                    config.settings.redis_replicas_ack,
                    config.settings.redis_replica_wait_ms,
                ),
            ),
            self._providers.by_channel,
            record=record,
        )
        REGISTRY.register(InFlightCollector(self._core))
        start_at_zero(service_points)
        address = serve_metrics()
        self._announcing = loop.create_task(
            announce(
                self._redis,
                "windowpay-servicepoint",
                address,
                {"actor": f"{service_points[0]}-{service_points[-1]}"},
            )
        )
        self._direct: DirectServer | None = None
        if config.settings.direct_actor_channel:
            self._direct = DirectServer(
                {"submit": self._core.submit, "observe": self._core.observe}
            )
        self._starting = loop.create_task(self._start())

    async def _start(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._core.start()
                break
            except (OSError, ConnectionError) as error:
                log.warning("cannot reach Redis yet (%s); retrying in %.1f s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        if self._direct is not None:
            await self._direct.start()

    async def submit(self, commands: Sequence[Command]) -> list[Result]:
        return await self._core.submit(commands)

    async def observe(self, notice: Notice) -> NoticeOutcome:
        return await self._core.observe(notice)

    async def ready(self) -> bool:
        await self._starting
        return True

    async def direct_address(self) -> tuple[str, str] | None:
        """(node id, socket path) of the direct channel, once ready; None if it is off."""
        await self._starting
        if self._direct is None:
            return None
        return ray.get_runtime_context().get_node_id(), self._direct.path

    async def status(self) -> dict[str, Any]:
        return self._core.status()

    async def pid(self) -> int:
        return os.getpid()

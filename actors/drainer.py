"""The record drainer actor: one per deployment, restarted by Ray if it dies; its
consumer group hands it again whatever it had not acknowledged."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from orchestrator.audit.closer import DailyCloser
from orchestrator.config import Config
from orchestrator.record.drainer import Drainer
from orchestrator.store.connect import connect
from orchestrator.telemetry import announce, configure_logging, serve_metrics


class DrainerActor:
    def __init__(
        self, config: Config, redis_url: str, database_url: str, keys_dir: str, audit_dir: str
    ) -> None:
        configure_logging(config.settings.log_level)
        redis = connect(redis_url)
        pool: AsyncConnectionPool = AsyncConnectionPool(
            database_url, min_size=1, max_size=2, open=False,
            check=AsyncConnectionPool.check_connection,
        )  # fmt: skip
        # Closes each business day with its signed roots, where the audit key is at hand.
        closer = (
            DailyCloser(
                pool, redis, Path(keys_dir), Path(audit_dir),
                [sp.id for sp in config.deployment.service_points], config.settings.zone,
            )
            if keys_dir and audit_dir
            else None
        )  # fmt: skip
        self._drainer = Drainer(redis, pool, config, closer=closer)
        loop = asyncio.get_running_loop()
        self._opening = loop.create_task(pool.open(wait=False))
        self._task = loop.create_task(self._drainer.run())
        self._announcing = loop.create_task(
            announce(redis, "windowpay-drainer", serve_metrics(), {})
        )

    async def ready(self) -> bool:
        return not self._task.done()

    async def status(self) -> dict[str, float]:
        return {
            "drained_orders": self._drainer.drained_orders,
            "lag_s": self._drainer.lag_s,
            "backlog": self._drainer.backlog,
        }

    async def pid(self) -> int:
        return os.getpid()

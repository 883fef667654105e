"""The receipt issuer actor: one per deployment, restarted by Ray if it dies; the
outbox's consumer group hands it again whatever it had not acknowledged."""

from __future__ import annotations

import asyncio
from pathlib import Path

from orchestrator.config import Config
from orchestrator.providers.keys import receipt_secret
from orchestrator.receipts.issuer import ReceiptIssuer
from orchestrator.store.connect import connect
from orchestrator.telemetry import announce, configure_logging, serve_metrics


class ReceiptIssuerActor:
    def __init__(self, config: Config, redis_url: str, keys_dir: str) -> None:
        configure_logging(config.settings.log_level)
        redis = connect(redis_url)
        self._issuer = ReceiptIssuer(redis, config, receipt_secret(Path(keys_dir)))
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._issuer.run())
        self._announcing = loop.create_task(
            announce(redis, "windowpay-receipts", serve_metrics(), {})
        )

    async def ready(self) -> bool:
        return not self._task.done()

    async def issued(self) -> int:
        return self._issuer.issued

"""The receipt issuer actor: one per deployment, restarted by Ray if it dies; the
outbox's consumer group hands it again whatever it had not acknowledged."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from redis.asyncio import Redis

from orchestrator.config import Config
from orchestrator.providers.keys import receipt_secret
from orchestrator.receipts.issuer import ReceiptIssuer


class ReceiptIssuerActor:
    def __init__(self, config: Config, redis_url: str, keys_dir: str) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        self._issuer = ReceiptIssuer(
            Redis.from_url(redis_url), config, receipt_secret(Path(keys_dir))
        )
        self._task = asyncio.get_running_loop().create_task(self._issuer.run())

    async def ready(self) -> bool:
        return not self._task.done()

    async def issued(self) -> int:
        return self._issuer.issued

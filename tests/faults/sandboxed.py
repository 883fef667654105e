"""A `windowpay serve` that runs its own sandbox providers, as `make run` does (the
fault stack keeps its gateways in the test process instead): their ledgers live in the
data directory's sandbox/, so a restart of the service restarts them too, and what they
remember is what the ledgers kept. Each deployment has its own Redis and database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import tomli_w

from orchestrator.config import Config, parse_config
from orchestrator.domain.states import Channel
from orchestrator.embedded_redis import EmbeddedRedis, free_port
from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.runfile import RunInfo
from tests.faults.served import Served
from tests.support import small_config_data


@dataclass
class SandboxedService:
    config: Config
    served: Served
    redis: EmbeddedRedis

    @property
    def data_dir(self) -> Path:
        return self.served.data_dir

    @property
    def windows(self) -> list[str]:
        return sorted(self.config.deployment.window_service_point)

    def terminal(self, window: str) -> str:
        return next(t for t, w in self.config.deployment.terminal_window.items() if w == window)

    def provider_url(self, channel: Channel) -> str:
        run = RunInfo.read(self.data_dir)
        assert run is not None, "windowpay is not serving"
        return run.providers[channel.value]

    async def trade(self, channel: Channel, out_trade_no: str) -> dict[str, Any] | None:
        """The sandbox ledger's trade, through the gateway's admin endpoint."""
        url = f"{self.provider_url(channel)}/_sandbox/trades/{out_trade_no}"
        async with aiohttp.ClientSession() as session, session.get(url) as answer:
            if answer.status == 404:
                return None
            assert answer.status == 200, await answer.text()
            found: dict[str, Any] = await answer.json()
            return found


@asynccontextmanager
async def sandboxed_service(
    work: Path, postgres: EmbeddedPostgres, name: str, data: dict[str, Any] | None = None
) -> AsyncIterator[SandboxedService]:
    """A fresh deployment named `name` under `work`, serving (sandboxes included)."""
    data = data or small_config_data(prefix=name[0].upper(), service_points=2, windows=4)
    data["service"]["log_level"] = "info"
    for settings in data["providers"].values():
        if isinstance(settings, dict):
            assert not settings.get("base_url"), "serve runs the sandboxes here"
    data_dir = work / name
    data_dir.mkdir(parents=True)
    config_path = data_dir / "windowpay.toml"
    config_path.write_text(tomli_w.dumps(data))
    redis = EmbeddedRedis(data_dir / "redis-server", appendfsync="always")
    redis.start()
    database_url = postgres.create_database(f"{name}_{uuid.uuid4().hex[:8]}")
    (data_dir / "data").mkdir()
    served = Served(config_path, redis.url, database_url, data_dir / "data", free_port())
    try:
        await served.supervised_start()
        yield SandboxedService(parse_config(data, str(config_path)), served, redis)
    finally:
        served.stop()
        redis.stop()

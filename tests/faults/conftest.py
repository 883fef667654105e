"""The fault tier: one deployment served by a real `windowpay serve` child process, which
the tests hurt on purpose and bring back.

It is its own world: an append-only redis-server with `appendfsync always` started here
(never the e2e tier's), the sandbox gateways in this process behind proxies that can fail,
and a served process with its own Ray. The pytest process itself never starts Ray, and
nothing is left running when the session ends.

Size: a CI-sized run by default (part of `make test`); `WINDOWPAY_FAULTS=full` (what
`make faults` sets) puts 200 payments in flight per fault, as the issue asks."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from orchestrator.channels.sandboxes import Sandboxes, start_sandboxes
from orchestrator.channels.unionpay.keys import SANDBOX_SIGNER
from orchestrator.config import Config, parse_config
from orchestrator.domain.states import Channel
from orchestrator.embedded_redis import EmbeddedRedis, free_port
from orchestrator.record.embedded import EmbeddedPostgres
from tests.faults.proxy import FaultyProxy
from tests.faults.served import Served
from tests.support import small_config_data

FULL = os.environ.get("WINDOWPAY_FAULTS") == "full"
SERVICE_POINTS, WINDOWS = (10, 20) if FULL else (4, 10)
VAR = Path(__file__).resolve().parents[2] / "var"
REPORT = VAR / "faults-report.json"
# The served processes' data dirs, logs included, kept until the next run for a look.
# (Not pytest's tmp_path: that is shared with other pytest runs, which prune it.) One
# per xdist worker ("main" without xdist), since each worker is a session of its own.
WORK = VAR / "faults" / os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.path):
            item.add_marker(pytest.mark.timeout(900 if FULL else 420))


@dataclass
class Stack:
    config: Config
    data_dir: Path
    redis: EmbeddedRedis
    sandboxes: Sandboxes
    proxies: dict[Channel, FaultyProxy]
    served: Served
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def windows(self) -> list[str]:
        return sorted(self.config.deployment.window_service_point)

    @property
    def terminals(self) -> dict[str, str]:
        """window -> its terminal"""
        return {w: t for t, w in self.config.deployment.terminal_window.items()}

    def record(self, fault: str, **figures: Any) -> None:
        """Keep a fault's measured figures for the report (and print them)."""
        figures["load_average_1m"] = round(os.getloadavg()[0], 1)  # the machine is shared
        self.figures[fault] = figures
        print(f"\nfault {fault}: {json.dumps(figures)}")
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(REPORT.read_text()) if REPORT.exists() else {}
        previous[fault] = {**figures, "size": "full" if FULL else "ci"}
        REPORT.write_text(json.dumps(previous, indent=2, sort_keys=True))


@pytest.fixture(scope="session")
def work_dir() -> Path:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    return WORK


@pytest.fixture(scope="session")
def fault_redis(work_dir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(work_dir / "redis", appendfsync="always")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def stack(
    fault_redis: EmbeddedRedis, work_dir: Path, postgres_server: EmbeddedPostgres
) -> AsyncIterator[Stack]:
    data = small_config_data(
        prefix="F",
        service_points=SERVICE_POINTS,
        windows=WINDOWS,
        pay_hold_s=30,
        expiry_sweep_interval_s=5,
        log_level="info",
    )
    # Ten copies of every request at once (the duplicate storm) are not abuse here.
    data["access"]["limits"].update(
        terminal_rate=100_000, terminal_burst=100_000, business_rate=100_000,
        business_burst=100_000,
    )  # fmt: skip
    data_dir = work_dir / "data"
    keys_dir = data_dir / "keys"
    config = parse_config(data, "fault config")
    sandboxes = await start_sandboxes(config, keys_dir)
    proxies: dict[Channel, FaultyProxy] = {}
    served: Served | None = None
    try:
        for channel, url in sandboxes.base_urls.items():
            proxy = FaultyProxy("127.0.0.1", int(url.rsplit(":", 1)[1]))
            await proxy.start()
            proxies[channel] = proxy
            data["providers"].setdefault(channel.value, {})["base_url"] = proxy.base_url
        # A UnionPay with a base_url must name its signer: here, the sandbox gateway's.
        data["providers"]["UNIONPAY"]["signer_name"] = SANDBOX_SIGNER
        data["providers"]["keys_dir"] = str(keys_dir)
        config_path = data_dir / "windowpay.toml"
        config_path.write_text(tomli_w.dumps(data))
        config = parse_config(data, str(config_path))
        database_url = postgres_server.create_database(f"faults_{uuid.uuid4().hex[:8]}")
        served = Served(config_path, fault_redis.url, database_url, data_dir, free_port())
        await served.supervised_start()
        yield Stack(config, data_dir, fault_redis, sandboxes, proxies, served)
    finally:
        if served is not None:
            served.stop()
        for proxy in proxies.values():
            await proxy.stop()
        await sandboxes.stop()


@pytest.fixture
async def deployment(stack: Stack) -> AsyncIterator[Stack]:
    """The stack, serving and with healthy gateways, whatever the previous test left."""
    for proxy in stack.proxies.values():
        proxy.bring_up()
    process = stack.served.process
    if process is None or process.poll() is not None:
        await stack.served.supervised_start()
    else:
        await stack.served.wait_serving()
    yield stack

"""One deployment for the whole e2e session: private Redis, Ray started once (small,
no dashboard), the service-point actors, and a front door on a free port."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import tomli_w

from actors import runtime
from orchestrator.bootstrap import start_front_door
from orchestrator.config import Config, parse_config
from orchestrator.domain.states import Channel
from orchestrator.embedded_redis import EmbeddedRedis
from orchestrator.frontdoor.server import FrontDoorServer
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from orchestrator.providers.keys import ensure_receipt_secret
from orchestrator.record import migrate
from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.runfile import RunInfo
from orchestrator.sandbox.bank import Trade
from orchestrator.sandbox.host import Sandboxes, start_sandboxes
from tests.support import code, small_config_data

CHANNELS = {
    Channel.WECHAT: pb.WECHAT,
    Channel.ALIPAY: pb.ALIPAY,
    Channel.UNIONPAY: pb.UNIONPAY,
    Channel.CASH: pb.CASH,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Load smoke runs go last: they leave the shared deployment's day busy."""
    items.sort(key=lambda item: item.get_closest_marker("load") is not None)


@dataclass
class Deployed:
    config: Config
    server: FrontDoorServer
    channel: grpc.aio.Channel
    actors: runtime.Actors
    redis_url: str
    sandboxes: Sandboxes
    keys_dir: Path
    data_dir: Path  # holds run.json and the config file, as `windowpay serve` leaves them
    database_url: str = ""  # the PostgreSQL record the drainer fills
    business: pb_grpc.BusinessGatewayStub = field(init=False)
    terminal: pb_grpc.TerminalStub = field(init=False)
    _windows: Iterator[str] = field(init=False)

    def __post_init__(self) -> None:
        self.business = pb_grpc.BusinessGatewayStub(self.channel)
        self.terminal = pb_grpc.TerminalStub(self.channel)
        windows = sorted(self.config.deployment.window_service_point)
        self._windows = itertools.cycle(windows)

    def window(self) -> str:
        """A window for the next test to use (round robin over all windows)."""
        return next(self._windows)

    def terminal_of(self, window: str) -> str:
        return next(t for t, w in self.config.deployment.terminal_window.items() if w == window)

    # Every test reaches the front door through these, never a channel of its own, so
    # that who a call comes from is decided in this one place.
    def terminal_for(self, terminal_id: str) -> pb_grpc.TerminalStub:
        """The Terminal service as the POS terminal `terminal_id` calls it."""
        return self.terminal

    @property
    def backoffice(self) -> pb_grpc.BackOfficeStub:
        return pb_grpc.BackOfficeStub(self.channel)

    @property
    def receipts(self) -> pb_grpc.ReceiptsStub:
        return pb_grpc.ReceiptsStub(self.channel)

    async def create(self, window: str, *fees: str, business_no: str = "") -> pb.Order:
        lines = [pb.OrderLine(fee_code=f, quantity=1) for f in fees or ("PLT-AUTO", "DOC-VLIC")]
        return await self.business.CreateOrder(
            pb.CreateOrderRequest(
                request_id=uuid.uuid4().hex,
                business_no=business_no or f"B-{uuid.uuid4().hex[:12]}",
                window_id=window,
                payer_name="王五",
                lines=lines,
            ),
            timeout=10,
        )

    def pay_request(self, order: pb.Order, channel: Channel, ending: str = "0000") -> pb.PayRequest:
        return pb.PayRequest(
            request_id=uuid.uuid4().hex,
            terminal_id=self.terminal_of(order.window_id),
            order_id=order.order_id,
            channel=CHANNELS[channel],
            auth_code=code(channel, ending),
            cash_received_fen=order.amount_fen if channel is Channel.CASH else 0,
        )

    async def get(self, order_id: str) -> pb.Order:
        return await self.terminal.GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=10)

    def trade(self, channel: Channel, out_trade_no: str) -> Trade | None:
        """The sandbox ledger's view of a trade."""
        return self.sandboxes.bank(channel).trade(out_trade_no)


@pytest.fixture(scope="session")
async def deployed(
    redis_server: EmbeddedRedis,
    postgres_server: EmbeddedPostgres,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Deployed]:
    data = small_config_data(
        prefix="G",
        service_points=3,
        windows=8,
        pay_hold_s=30,
        # A reversal is given up after 3 s and the trade followed up every 0.2 s.
        channels={"WECHAT": {"reverse_give_up_after_s": 60, "follow_up_interval_s": 4}},
    )
    config = parse_config(data, "e2e config")
    keys_dir = tmp_path_factory.mktemp("keys")
    data_dir = tmp_path_factory.mktemp("data")
    ensure_receipt_secret(keys_dir)
    database_url = postgres_server.create_database(f"e2e_{uuid.uuid4().hex[:8]}")
    migrate.upgrade(database_url)
    runtime.start(num_cpus=2)
    stack = AsyncExitStack()
    try:
        sandboxes = await start_sandboxes(config, keys_dir)
        stack.push_async_callback(sandboxes.stop)
        config = config.with_base_urls(sandboxes.base_urls)
        actors = await runtime.deploy(config, redis_server.url, str(keys_dir), database_url)
        submitters = actors.submitters
        server = await start_front_door(
            config, redis_server.url, dict(submitters), stack, database_url
        )
        # What `windowpay serve` leaves for the other commands: its config and run.json.
        for channel_name, url in sandboxes.base_urls.items():
            data["providers"][channel_name.value]["base_url"] = url
        data["providers"]["keys_dir"] = str(keys_dir)
        config_path = data_dir / "windowpay.toml"
        config_path.write_text(tomli_w.dumps(data))
        RunInfo(
            grpc=server.address,
            redis_url=redis_server.url,
            keys_dir=str(keys_dir),
            config=str(config_path),
            providers={c.value: u for c, u in sandboxes.base_urls.items()},
            pid=os.getpid(),
            database_url=database_url,
        ).write(data_dir)
        channel = grpc.aio.insecure_channel(server.address)
        stack.push_async_callback(channel.close)
        yield Deployed(
            config,
            server,
            channel,
            actors,
            redis_server.url,
            sandboxes,
            keys_dir,
            data_dir,
            database_url,
        )
    finally:
        await stack.aclose()
        runtime.shutdown()

"""One deployment for the whole e2e session: private Redis, Ray started once (small,
no dashboard), the service-point actors, and a front door on a free port."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
import orjson
import pytest
import tomli_w
from redis.asyncio import Redis

from actors import runtime
from orchestrator.access import client
from orchestrator.access.setup import server_tls
from orchestrator.access.supervisors import ensure_dev_pins
from orchestrator.bootstrap import start_front_door
from orchestrator.channels.sandboxes import Sandboxes, start_sandboxes
from orchestrator.channels.unionpay.keys import SANDBOX_SIGNER
from orchestrator.config import Config, parse_config
from orchestrator.domain.states import Channel
from orchestrator.embedded_redis import EmbeddedRedis
from orchestrator.frontdoor.server import FrontDoorServer
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc
from orchestrator.notify.listener import NotifyListener, bound_port, start_listener
from orchestrator.notify.wiring import build_verifiers
from orchestrator.providers.keys import ensure_receipt_secret
from orchestrator.record import migrate
from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.runfile import RunInfo
from orchestrator.sandbox.bank import Trade
from orchestrator.store.redis_store import RedisStore
from tests.support import code, small_config_data

CHANNELS = {
    Channel.WECHAT: pb.WECHAT,
    Channel.ALIPAY: pb.ALIPAY,
    Channel.UNIONPAY: pb.UNIONPAY,
    Channel.CASH: pb.CASH,
}


StubT = TypeVar("StubT")


@dataclass
class Deployed:
    config: Config
    server: FrontDoorServer
    actors: runtime.Actors
    redis_url: str
    sandboxes: Sandboxes
    keys_dir: Path
    data_dir: Path  # holds run.json and the config file, as `windowpay serve` leaves them
    pki_dir: Path  # the deployment's CA and every principal's certificate
    stack: AsyncExitStack
    store: RedisStore  # the tests' own look into Redis (the front door only reads orders)
    database_url: str = ""  # the PostgreSQL record the drainer fills
    _channels: dict[str, grpc.aio.Channel] = field(init=False, default_factory=dict)
    _windows: Iterator[str] = field(init=False)

    def __post_init__(self) -> None:
        windows = sorted(self.config.deployment.window_service_point)
        self._windows = itertools.cycle(windows)

    async def forget(self, principal: str) -> None:
        """Close the channel kept for `principal` (its certificate was replaced)."""
        channel = self._channels.pop(principal, None)
        if channel is not None:
            await channel.close()

    def channel_as(self, principal: str) -> grpc.aio.Channel:
        """A mutual-TLS channel presenting `principal`'s certificate (one per principal)."""
        channel = self._channels.get(principal)
        if channel is None:
            channel = client.of_pki(self.pki_dir, principal).channel(self.server.address)
            self._channels[principal] = channel
        return channel

    def stub_as(self, principal: str, stub: Callable[[grpc.aio.Channel], StubT]) -> StubT:
        """Any service, as any principal calls it (for tests of who may do what)."""
        return stub(self.channel_as(principal))

    async def close_channels(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    @property
    def business(self) -> pb_grpc.BusinessGatewayStub:
        return self.stub_as("business", pb_grpc.BusinessGatewayStub)

    def window(self) -> str:
        """A window for the next test to use (round robin over all windows)."""
        return next(self._windows)

    def terminal_of(self, window: str) -> str:
        return next(t for t, w in self.config.deployment.terminal_window.items() if w == window)

    # Every test reaches the front door through these, never a channel of its own, so
    # that who a call comes from is decided in this one place.
    def terminal_for(self, terminal_id: str) -> pb_grpc.TerminalStub:
        """The Terminal service as the POS terminal `terminal_id` calls it."""
        return self.stub_as(terminal_id, pb_grpc.TerminalStub)

    def terminal_of_order(self, order: pb.Order) -> pb_grpc.TerminalStub:
        """The Terminal service as the terminal of the order's window calls it."""
        return self.terminal_for(self.terminal_of(order.window_id))

    def supervisor_of(self, order: pb.Order) -> tuple[str, str]:
        """The supervisor of the order's service point and the dev PIN made at start."""
        supervisor = next(
            s for s, sp in self.config.access.supervisors.items() if sp == order.service_point_id
        )
        return supervisor, self.pins[supervisor]

    @property
    def pins(self) -> dict[str, str]:
        pins: dict[str, str] = orjson.loads((self.pki_dir / "supervisors.json").read_bytes())
        return pins

    @property
    def backoffice(self) -> pb_grpc.BackOfficeStub:
        return self.stub_as("backoffice", pb_grpc.BackOfficeStub)

    @property
    def receipts(self) -> pb_grpc.ReceiptsStub:
        return self.stub_as("backoffice", pb_grpc.ReceiptsStub)

    async def create(
        self, window: str, *fees: str, business_no: str = "", deadline_s: float = 10
    ) -> pb.Order:
        lines = [pb.OrderLine(fee_code=f, quantity=1) for f in fees or ("PLT-AUTO", "DOC-VLIC")]
        return await self.business.CreateOrder(
            pb.CreateOrderRequest(
                request_id=uuid.uuid4().hex,
                business_no=business_no or f"B-{uuid.uuid4().hex[:12]}",
                window_id=window,
                payer_name="王五",
                lines=lines,
            ),
            timeout=deadline_s,
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

    def refund_request(
        self, order: pb.Order, amount_fen: int, reason: str = "退费"
    ) -> pb.RefundRequest:
        """A refund at the order's terminal, approved by its point's supervisor and PIN."""
        supervisor, pin = self.supervisor_of(order)
        return pb.RefundRequest(
            request_id=uuid.uuid4().hex,
            terminal_id=self.terminal_of(order.window_id),
            order_id=order.order_id,
            amount_fen=amount_fen,
            reason=reason,
            supervisor_id=supervisor,
            supervisor_pin=pin,
        )

    async def get(self, order_id: str) -> pb.Order:
        reader = self.stub_as("backoffice", pb_grpc.TerminalStub)
        return await reader.GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=10)

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
        # A reversal is given up after 3 s and the trade followed up every 0.2 s. A QR
        # code lives 12 s: time for a loaded machine's terminal to show it.
        channels={
            "WECHAT": {
                "reverse_give_up_after_s": 60,
                "follow_up_interval_s": 4,
                "qr_expiry_s": 240,
            },
            "ALIPAY": {"qr_expiry_s": 240},
            "UNIONPAY": {"qr_expiry_s": 240},
        },
    )
    # WeChat's reverse of a trade never made settles at twice the payment code's life:
    # within the 3 s its reversal is given up here.
    data["providers"]["WECHAT"]["payment_code_life_s"] = 1.0
    # Access: a spare principal to revoke, a second business system, a second supervisor
    # at the first point to lock out, and small stream bounds so that a reader that stops
    # reading is dropped soon.
    data["access"] = {
        "principals": {
            "business": "business", "backoffice": "backoffice", "auditor": "auditor",
            "monitor": "monitor", "spare": "auditor", "business2": "business",
        },
        # The tests read as the back office and the auditor far more often than a person
        # would (every outcome checked): their rate is not what is tested here.
        "limits": {"stream_queue": 8, "stream_stall_s": 5, "other_rate": 10_000,
                   "other_burst": 10_000},
        # the subscriber ids each business system may use: one per test that subscribes
        "subscribers": {
            "business": "business", "biz-away": "business", "biz-single": "business",
            "biz-slow": "business", "biz-two": "business2", "biz-revoked": "business2",
        },
    }  # fmt: skip
    data["supervisors"]["G1L"] = "G1"
    config = parse_config(data, "e2e config")
    keys_dir = tmp_path_factory.mktemp("keys")
    data_dir = tmp_path_factory.mktemp("data")
    ensure_receipt_secret(keys_dir)
    tls = server_tls(config, data_dir, create=True)
    pki_dir = data_dir / config.access.pki_dir
    ensure_dev_pins(config.access, pki_dir)
    database_url = postgres_server.create_database(f"e2e_{uuid.uuid4().hex[:8]}")
    migrate.upgrade(database_url)
    runtime.start(num_cpus=2)
    stack = AsyncExitStack()
    try:
        sandboxes = await start_sandboxes(config, keys_dir)
        stack.push_async_callback(sandboxes.stop)
        config = config.with_base_urls(sandboxes.base_urls)
        # The providers' notifications, as `windowpay serve` takes them.
        listener = NotifyListener()
        runner = await start_listener(listener, "127.0.0.1", 0)
        stack.push_async_callback(runner.cleanup)
        config = config.with_notify(port=bound_port(runner))
        for channel_of, gateway in sandboxes.gateways.items():
            gateway.notify_url = config.notify_url(channel_of)
        actors = await runtime.deploy(config, redis_server.url, str(keys_dir), database_url)
        submitters = actors.submitters
        stack.push_async_callback(runtime.close_submitters, list(submitters.values()))
        verifiers, clients = build_verifiers(config, keys_dir)
        for http in clients:
            stack.push_async_callback(http.close)
        listener.attach(verifiers, submitters)
        server = await start_front_door(
            config, redis_server.url, dict(submitters), stack, tls, pki_dir, database_url
        )
        store = RedisStore(Redis.from_url(redis_server.url))
        stack.push_async_callback(store.redis.aclose)
        # What `windowpay serve` leaves for the other commands: its config and run.json.
        for channel_name, url in sandboxes.base_urls.items():
            data["providers"].setdefault(channel_name.value, {})["base_url"] = url
        # A UnionPay with a base_url must name its signer: here, the sandbox gateway's.
        data["providers"]["UNIONPAY"]["signer_name"] = SANDBOX_SIGNER
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
            pki_dir=str(pki_dir),
            ca=str(tls.ca),
            database_url=database_url,
        ).write(data_dir)
        deployed = Deployed(
            config,
            server,
            actors,
            redis_server.url,
            sandboxes,
            keys_dir,
            data_dir,
            pki_dir,
            stack,
            store,
            database_url,
        )
        stack.push_async_callback(deployed.close_channels)
        yield deployed
    finally:
        await stack.aclose()
        runtime.shutdown()

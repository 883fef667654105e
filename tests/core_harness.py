"""ServicePointCore over a store and the in-process sandbox banks (no Ray): the harness
the contract suite (tests/integration/test_store_contract.py) and the tests of single
core features share. `harness` is the one over a MemoryStore, for the unit tier."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from orchestrator.channels.inprocess import SandboxProvider
from orchestrator.config import Config
from orchestrator.domain.catalog import RequestedLine
from orchestrator.domain.commands import Accepted, CreateOrder, Done, Pay, RefundOrder, Result
from orchestrator.domain.order import Order
from orchestrator.domain.states import Channel, OrderState
from orchestrator.sandbox.bank import SandboxBank, Timing
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.store.memory import MemoryStore
from orchestrator.store.redis_store import RedisStore
from tests.support import PROVIDER_CHANNELS, code, eventually, new_id, small_config

LINES = (RequestedLine("PLT-AUTO", 1), RequestedLine("DOC-VLIC", 2))


class Harness:
    """One deployment over one store, with one or more core incarnations."""

    def __init__(self, store: Any, config: Config, redis: Redis | None = None) -> None:
        self.store = store  # MemoryStore or RedisStore
        self._redis = redis
        self.config = config
        self.sp = config.deployment.service_points[0].id
        self.banks = {
            ch: SandboxBank(ch.value, Timing(time_scale=config.settings.time_scale))
            for ch in PROVIDER_CHANNELS
        }
        self.fatal: list[BaseException] = []
        self.cores: list[ServicePointCore] = []

    @classmethod
    def over_redis(cls, redis: Redis, config: Config) -> Harness:
        return cls(RedisStore(redis), config, redis)

    @property
    def redis(self) -> Redis:
        assert self._redis is not None, "this harness runs over the in-memory store"
        return self._redis

    async def core(self, *, clock: Any = None, observer: Any = None) -> ServicePointCore:
        providers = {ch: SandboxProvider(ch, self.banks[ch]) for ch in PROVIDER_CHANNELS}
        core = ServicePointCore(
            [sp.id for sp in self.config.deployment.service_points],
            self.config,
            self.store,
            providers,
            clock=clock,
            on_fatal=self.fatal.append,
            observer=observer,
        )
        await core.start()
        self.cores.append(core)
        return core

    def window(self, n: int = 1) -> str:
        return f"{self.sp}W{n}"

    def create(
        self,
        window: int = 1,
        *,
        business_no: str | None = None,
        lines: tuple[RequestedLine, ...] = LINES,
    ) -> CreateOrder:
        business_no = business_no or new_id("B")
        return CreateOrder(new_id(), business_no, self.window(window), "张三", lines)

    def pay(
        self,
        order_id: str,
        channel: Channel = Channel.WECHAT,
        ending: str = "0000",
        *,
        window: int = 1,
        auth_code: str | None = None,
    ) -> Pay:
        if auth_code is None:
            auth_code = code(channel, ending)
        cash = 20000 if channel is Channel.CASH else 0
        terminal = f"{self.sp}T{window}"
        return Pay(new_id(), terminal, self.window(window), order_id, channel, auth_code, cash)

    def refund(self, order_id: str, amount_fen: int) -> RefundOrder:
        return RefundOrder(
            new_id(), f"{self.sp}T1", self.window(1), order_id, amount_fen, "退费", "S1"
        )

    async def stored(self, order_id: str) -> Order:
        snapshot = await self.store.order(order_id)
        assert snapshot is not None
        return Order.from_record(orjson.loads(snapshot))


async def one(core: ServicePointCore, command: Any) -> Result:
    [result] = await core.submit([command])
    return result


def order_of(result: Result) -> dict[str, Any]:
    assert isinstance(result, (Done, Accepted)), result
    record: dict[str, Any] = orjson.loads(result.order)
    return record


async def settled(h: Harness, order_id: str) -> Order:
    return await eventually(
        lambda: h.stored(order_id),
        lambda o: (
            o.in_flight() is None and o.state is not OrderState.PAYING and not o.pending_refunds()
        ),
    )


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(MemoryStore(), small_config(service_points=1, windows=4))
    yield h
    for core in h.cores:
        await core.stop()
    assert h.fatal == []

"""Every acknowledged transition survives a crash of Redis itself (SIGKILL): a private
redis-server with append-only persistence is killed and started again on its files."""

from pathlib import Path

import orjson
from redis.asyncio import Redis

from orchestrator.channels.inprocess import SandboxProvider
from orchestrator.domain.catalog import RequestedLine
from orchestrator.domain.commands import Accepted, CreateOrder, Done, Pay
from orchestrator.domain.states import Channel
from orchestrator.embedded_redis import EmbeddedRedis
from orchestrator.sandbox.bank import SandboxBank, Timing
from orchestrator.servicepoint.core import ServicePointCore
from orchestrator.store.redis_store import RedisStore
from tests.support import PROVIDER_CHANNELS, code, eventually, new_id, small_config


async def test_acknowledged_changes_survive_a_redis_crash(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    config = small_config(prefix="D", service_points=1, windows=2)
    banks = {ch: SandboxBank(ch.value, Timing(time_scale=0.05)) for ch in PROVIDER_CHANNELS}
    redis = Redis.from_url(server.url)
    providers = {ch: SandboxProvider(ch, banks[ch]) for ch in PROVIDER_CHANNELS}
    core = ServicePointCore(["D1"], config, RedisStore(redis), providers, on_fatal=print)
    try:
        await core.start()
        [created] = await core.submit(
            [CreateOrder(new_id(), new_id("B"), "D1W1", "周八", (RequestedLine("EXM-K1", 1),))]
        )
        assert isinstance(created, Done)
        order_id = orjson.loads(created.order)["order_id"]
        [accepted] = await core.submit(
            [Pay(new_id(), "D1T1", "D1W1", order_id, Channel.WECHAT, code(Channel.WECHAT), 0)]
        )
        assert isinstance(accepted, Accepted)
        store = RedisStore(redis)
        await eventually(lambda: store.order(order_id), lambda s: s is not None and b'"PAID"' in s)
        await core.stop()
        server.crash()
        await redis.aclose()

        server.start()
        redis = Redis.from_url(server.url)
        store = RedisStore(redis)
        snapshot = await store.order(order_id)
        assert snapshot is not None and orjson.loads(snapshot)["state"] == "PAID"
        journal = [orjson.loads(e) for e in await store.journal(order_id)]
        assert [e["v"] for e in journal] == [1, 2, 3]
        assert journal[-1]["attempt_state"] == "SUCCEEDED"
    finally:
        await redis.aclose()
        server.stop()

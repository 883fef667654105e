"""Builds the provider adapters a service-point actor uses, from configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import Config
from orchestrator.domain.states import Channel
from orchestrator.providers.alipay import Alipay
from orchestrator.providers.http import HttpClient
from orchestrator.providers.instrumented import InstrumentedProvider
from orchestrator.providers.keys import provider_keys
from orchestrator.providers.port import PaymentProvider
from orchestrator.providers.unionpay import UnionPay
from orchestrator.providers.wechat import WeChatPay


@dataclass
class Providers:
    """The adapters of every channel and the HTTP clients they share a process with."""

    by_channel: dict[Channel, PaymentProvider]
    clients: list[HttpClient]

    def __getitem__(self, channel: Channel) -> PaymentProvider:
        return self.by_channel[channel]

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


def build_providers(config: Config, keys_dir: Path) -> Providers:
    """One adapter per channel; every base_url must be resolved (no empty sandbox URL)."""
    wechat = config.providers[Channel.WECHAT]
    alipay = config.providers[Channel.ALIPAY]
    unionpay = config.providers[Channel.UNIONPAY]
    for channel, settings in config.providers.items():
        if not settings.base_url:
            raise ValueError(f"no base_url for {channel}: start the sandbox or configure one")
    clients = {channel: HttpClient(p.base_url) for channel, p in config.providers.items()}
    adapters: dict[Channel, PaymentProvider] = {
        Channel.WECHAT: WeChatPay(
            clients[Channel.WECHAT],
            provider_keys(keys_dir, "wechat").for_merchant(),
            wechat.merchant_id,
            wechat.app_id,
        ),
        Channel.ALIPAY: Alipay(
            clients[Channel.ALIPAY],
            provider_keys(keys_dir, "alipay").for_merchant(),
            alipay.merchant_id,
        ),
        Channel.UNIONPAY: UnionPay(
            clients[Channel.UNIONPAY],
            provider_keys(keys_dir, "unionpay").for_merchant(),
            unionpay.merchant_id,
            unionpay.notify_url,
        ),
    }
    measured: dict[Channel, PaymentProvider] = {
        channel: InstrumentedProvider(adapter) for channel, adapter in adapters.items()
    }
    return Providers(measured, list(clients.values()))

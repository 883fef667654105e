"""Builds the provider adapters a service-point actor uses, from configuration."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.channels.registry import spec
from orchestrator.config import Config
from orchestrator.domain.states import Channel
from orchestrator.providers.http import HttpClient
from orchestrator.providers.instrumented import InstrumentedProvider
from orchestrator.providers.port import PaymentProvider


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
    for channel, settings in config.providers.items():
        if not settings.base_url:
            raise ValueError(f"no base_url for {channel}: start the sandbox or configure one")
    clients = {channel: HttpClient(p.base_url) for channel, p in config.providers.items()}
    measured: dict[Channel, PaymentProvider] = {
        channel: InstrumentedProvider(
            spec(channel).adapter(
                clients[channel],
                replace(settings, notify_url=config.notify_url(channel)),
                keys_dir,
            )
        )
        for channel, settings in config.providers.items()
    }
    return Providers(measured, list(clients.values()))

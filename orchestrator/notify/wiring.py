"""The notification verifiers of every provider channel, built from configuration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.channels.alipay import wiring as alipay
from orchestrator.channels.unionpay import wiring as unionpay
from orchestrator.channels.wechat import wiring as wechat
from orchestrator.config import Config, ProviderSettings
from orchestrator.domain.states import Channel
from orchestrator.notify.listener import Verifier
from orchestrator.providers.http import HttpClient

Build = Callable[[HttpClient, ProviderSettings, Path, float], Any]
BUILDERS: dict[Channel, Build] = {
    Channel.WECHAT: wechat.notifications,
    Channel.ALIPAY: alipay.notifications,
    Channel.UNIONPAY: unionpay.notifications,
}


def build_verifiers(
    config: Config, keys_dir: Path
) -> tuple[dict[Channel, Verifier], list[HttpClient]]:
    """A verifier per channel (every base_url resolved), and the HTTP clients they hold
    (WeChat Pay's fetches its platform certificates), for the caller to close."""
    verifiers: dict[Channel, Verifier] = {}
    clients = []
    for channel, settings in config.providers.items():
        client = HttpClient(settings.base_url)
        clients.append(client)
        verifiers[channel] = BUILDERS[channel](client, settings, keys_dir, config.notify.max_skew_s)
    return verifiers, clients

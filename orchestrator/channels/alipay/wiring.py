"""Builds Alipay's adapter (from the merchant's keys) and its sandbox gateway (from the
platform's dev keys)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.channels.alipay.adapter import Alipay
from orchestrator.channels.alipay.files import alipay_keys
from orchestrator.channels.alipay.notify import AlipayNotifications
from orchestrator.channels.alipay.sandbox import AlipayGateway
from orchestrator.config import ProviderSettings
from orchestrator.providers.http import HttpClient
from orchestrator.sandbox.bank import SandboxBank


def adapter(client: HttpClient, settings: ProviderSettings, keys_dir: Path) -> Alipay:
    return Alipay(
        client,
        alipay_keys(keys_dir).for_merchant(),
        settings.merchant_id,
        notify_url=settings.notify_url,
    )


def gateway(bank: SandboxBank, settings: ProviderSettings, keys_dir: Path) -> AlipayGateway:
    platform = alipay_keys(keys_dir).for_platform()
    return AlipayGateway(bank, platform, settings.merchant_id)


def notifications(
    client: HttpClient, settings: ProviderSettings, keys_dir: Path, max_skew_s: float
) -> AlipayNotifications:
    public = alipay_keys(keys_dir).for_merchant().peer_public
    return AlipayNotifications(public, settings.merchant_id, max_skew_s)

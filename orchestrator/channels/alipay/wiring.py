"""Builds Alipay's adapter (from the merchant's keys) and its sandbox gateway (from the
platform's dev keys), in public-key or certificate mode as the configuration says."""

from __future__ import annotations

from pathlib import Path

from orchestrator.channels.alipay.adapter import Alipay
from orchestrator.channels.alipay.notify import AlipayNotifications
from orchestrator.channels.alipay.sandbox import AlipayGateway
from orchestrator.channels.alipay.trust import gateway_keys, merchant_keys
from orchestrator.config import ProviderSettings
from orchestrator.providers.http import HttpClient
from orchestrator.sandbox.bank import SandboxBank


def adapter(client: HttpClient, settings: ProviderSettings, keys_dir: Path) -> Alipay:
    return Alipay(
        client,
        merchant_keys(keys_dir, settings.credentials),
        settings.merchant_id,
        notify_url=settings.notify_url,
    )


def gateway(bank: SandboxBank, settings: ProviderSettings, keys_dir: Path) -> AlipayGateway:
    return AlipayGateway(bank, gateway_keys(keys_dir, settings.credentials), settings.merchant_id)


def notifications(
    client: HttpClient, settings: ProviderSettings, keys_dir: Path, max_skew_s: float
) -> AlipayNotifications:
    """The verifier trusts what the adapter trusts, and asks the gateway (through an
    adapter of its own) for a refund's own amount: a refund notification tells only
    the trade's refunds so far."""
    alipay = adapter(client, settings, keys_dir)
    return AlipayNotifications(
        merchant_keys(keys_dir, settings.credentials).notice_keys(),
        settings.merchant_id,
        max_skew_s,
        refunds=alipay.refund_found,
    )

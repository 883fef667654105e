"""Builds Alipay's adapter (from the merchant's keys) and its sandbox gateway (from the
platform's dev keys), in public-key or certificate mode as the configuration says."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.channels.alipay.adapter import Alipay
from orchestrator.channels.alipay.notify import AlipayNotifications
from orchestrator.channels.alipay.sandbox import AlipayGateway
from orchestrator.channels.alipay.trust import gateway_keys, merchant_keys
from orchestrator.config import ConfigError, ProviderSettings
from orchestrator.providers.http import HttpClient
from orchestrator.sandbox.bank import SandboxBank

PID = re.compile(r"2088[0-9]{12}", re.ASCII)


def adapter(client: HttpClient, settings: ProviderSettings, keys_dir: Path) -> Alipay:
    return Alipay(
        client,
        merchant_keys(keys_dir, settings.credentials),
        settings.merchant_id,
        notify_url=settings.notify_url,
    )


def gateway(bank: SandboxBank, settings: ProviderSettings, keys_dir: Path) -> AlipayGateway:
    keys = gateway_keys(keys_dir, settings.credentials)
    return AlipayGateway(bank, keys, settings.merchant_id, seller_id(settings))


def notifications(
    client: HttpClient, settings: ProviderSettings, keys_dir: Path, max_skew_s: float
) -> AlipayNotifications:
    """The verifier trusts what the adapter trusts, and asks the gateway (through an
    adapter of its own) for a refund's own amount: a refund notification tells only
    the trade's refunds so far."""
    alipay = adapter(client, settings, keys_dir)
    return AlipayNotifications(
        alipay.keys.notice_keys,  # with any certificate its answers made it download
        settings.merchant_id,
        max_skew_s,
        refunds=alipay.refund_found,
        seller_id=seller_id(settings),
    )


def seller_id(settings: ProviderSettings) -> str:
    """The configured PID that notifications must name as seller_id ("" unchecked)."""
    given = settings.credentials["seller_id"]
    if given and not PID.fullmatch(given):
        raise ConfigError(
            f"providers.ALIPAY.seller_id: {given!r} is not a PID (2088 and 12 digits)"
        )
    return given

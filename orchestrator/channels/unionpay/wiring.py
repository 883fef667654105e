"""Builds UnionPay's adapter (from the merchant's .pfx and the root/middle certificates)
and its sandbox gateway (from the acquirer's dev keys)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from orchestrator.channels.unionpay.access import access_from
from orchestrator.channels.unionpay.adapter import UnionPay, shift_of
from orchestrator.channels.unionpay.keys import UnionPayKeys
from orchestrator.channels.unionpay.notify import UnionPayNotifications
from orchestrator.channels.unionpay.sandbox import UnionPayGateway
from orchestrator.channels.unionpay.sandbox_keys import unionpay_platform_keys
from orchestrator.config import Credentials, ProviderSettings
from orchestrator.providers.certificates import CertificateError, load_pfx
from orchestrator.providers.http import HttpClient
from orchestrator.providers.keys import KeyMaterialError, read_certificate, read_secret
from orchestrator.sandbox.bank import SandboxBank


def adapter(client: HttpClient, settings: ProviderSettings, keys_dir: Path) -> UnionPay:
    return UnionPay(
        client,
        unionpay_keys(keys_dir, settings.credentials),
        settings.merchant_id,
        settings.notify_url,
        access=access_from(settings.credentials),
    )


def gateway(bank: SandboxBank, settings: ProviderSettings, keys_dir: Path) -> UnionPayGateway:
    return UnionPayGateway(
        bank, unionpay_platform_keys(keys_dir), settings.merchant_id, bill_day_shift(settings)
    )


def bill_day_shift(settings: ProviderSettings) -> timedelta:
    """The settlement file of day D holds the settlement day that ends at
    `settlement_day_ends` on D (23:00 Beijing time at UnionPay)."""
    return shift_of(settings.options.text("settlement_day_ends"))


def unionpay_keys(keys_dir: Path, credentials: Credentials) -> UnionPayKeys:
    password = read_secret(
        keys_dir, credentials["pfx_password_file"], credentials["pfx_password_env"]
    )
    pfx = keys_dir / credentials["pfx_file"]
    try:
        identity = load_pfx(pfx.read_bytes(), password)
    except OSError as error:
        raise KeyMaterialError(f"cannot read {pfx}: {error.strerror}") from None
    except CertificateError as error:
        raise KeyMaterialError(f"{pfx}: {error}") from None
    return UnionPayKeys(
        identity,
        read_certificate(keys_dir / credentials["root_cert_file"]),
        read_certificate(keys_dir / credentials["middle_cert_file"]),
        credentials["signer_name"],
    )


def notifications(
    client: HttpClient, settings: ProviderSettings, keys_dir: Path, max_skew_s: float
) -> UnionPayNotifications:
    return UnionPayNotifications(
        unionpay_keys(keys_dir, settings.credentials), settings.merchant_id
    )

"""Builds WeChat Pay's adapter (from the merchant's keys) and its sandbox gateway (from the
platform's dev keys). `partner = true` in the provider's settings chooses partner mode
(服务商): merchant_id and app_id are then the partner's, and `sub_merchant_id` (with
`sub_app_id`, if the sub-merchant has an app) names the sub-merchant (accounts.py)."""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.channels.wechat import files
from orchestrator.channels.wechat.accounts import Account
from orchestrator.channels.wechat.adapter import WeChatPay
from orchestrator.channels.wechat.notify import WeChatNotifications
from orchestrator.channels.wechat.outcomes import never_created_after
from orchestrator.channels.wechat.platform import WeChatMerchant, WeChatTrust
from orchestrator.channels.wechat.sandbox import WeChatGateway
from orchestrator.channels.wechat.sandbox_keys import wechat_platform_keys
from orchestrator.config import ConfigError, Credentials, ProviderSettings
from orchestrator.providers.certificates import rsa_public_key, serial_hex
from orchestrator.providers.http import HttpClient
from orchestrator.providers.keys import KeyMaterialError, read_identity, read_secret
from orchestrator.providers.signing import load_public_key
from orchestrator.sandbox.bank import SandboxBank

log = logging.getLogger(__name__)

PUBLIC_KEY_ID_PREFIX = "PUB_KEY_ID_"
LOOPBACK = "127.0.0.1"


def adapter(client: HttpClient, settings: ProviderSettings, keys_dir: Path) -> WeChatPay:
    account = account_of(settings)
    client_ip = payer_client_ip(settings) or calling_address(settings.base_url or client.base_url)
    return WeChatPay(
        client,
        wechat_merchant(keys_dir),
        account.mchid,
        account.appid,
        wechat_trust(keys_dir, settings.credentials),
        notify_url=settings.notify_url,
        sub_mchid=account.sub_mchid,
        sub_appid=account.sub_appid,
        client_ip=client_ip,
        never_created_after_s=never_created_after(settings.options.number("payment_code_life_s")),
    )


def account_of(settings: ProviderSettings) -> Account:
    """Who windowpay is at WeChat Pay: a merchant of its own, or with `partner = true` a
    partner acting for `sub_merchant_id` (the config requires it then and refuses it
    otherwise)."""
    if not settings.options.flag("partner"):
        if settings.credentials["sub_app_id"]:
            raise ConfigError("providers.WECHAT.sub_app_id: is set, but partner = false")
        return Account(settings.merchant_id, settings.app_id)
    credentials = settings.credentials
    return Account(
        settings.merchant_id,
        settings.app_id,
        credentials["sub_merchant_id"],
        credentials["sub_app_id"],
    )


def payer_client_ip(settings: ProviderSettings) -> str:
    """The configured payer_client_ip ("" when the calling address is to be found)."""
    given = settings.options.text("payer_client_ip")
    if given:
        try:
            ipaddress.ip_address(given)
        except ValueError:
            raise ConfigError(
                f"providers.WECHAT.payer_client_ip: {given!r} is not an IPv4 or IPv6 address"
            ) from None
    return given


def calling_address(base_url: str) -> str:
    """The address this host calls WeChat Pay from: what a Native order sends as
    scene_info.payer_client_ip (WeChat's older rule for Native: "the IP of the machine
    that calls the WeChat Pay API"; the payer's own address is not known when the code is
    made). Found by routing a UDP socket towards the gateway; nothing is sent."""
    host = urlsplit(base_url).hostname or LOOPBACK
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 443))
            address: str = probe.getsockname()[0]
            return address
    except OSError as error:
        log.warning("WeChat Pay: no route to %s (%s); payer_client_ip is %s", host, error,
                    LOOPBACK)  # fmt: skip
        return LOOPBACK


def gateway(bank: SandboxBank, settings: ProviderSettings, keys_dir: Path) -> WeChatGateway:
    credentials = settings.credentials
    keys = wechat_platform_keys(
        keys_dir,
        credentials["apiv3_key_file"],
        credentials["apiv3_key_env"],
        credentials["public_key_id"],
    )
    account = account_of(settings)
    return WeChatGateway(
        bank,
        keys,
        account.mchid,
        account.appid,
        sub_mchid=account.sub_mchid,
        sub_appid=account.sub_appid,
    )


def wechat_merchant(keys_dir: Path) -> WeChatMerchant:
    key, cert = files.merchant_key(keys_dir), files.merchant_cert(keys_dir)
    identity = read_identity(key, cert)
    certified = rsa_public_key(identity.certificate).public_numbers()
    if identity.key.public_key().public_numbers() != certified:
        raise KeyMaterialError(f"{cert} is not the certificate of {key}")
    return WeChatMerchant(identity.key, serial_hex(identity.certificate))


def wechat_trust(keys_dir: Path, credentials: Credentials) -> WeChatTrust:
    apiv3_key = read_secret(keys_dir, credentials["apiv3_key_file"], credentials["apiv3_key_env"])
    public_key = None
    if credentials["public_key_id"]:
        if not credentials["public_key_id"].startswith(PUBLIC_KEY_ID_PREFIX):
            raise KeyMaterialError(
                f"public_key_id: a WeChat Pay public key id starts with {PUBLIC_KEY_ID_PREFIX}"
            )
        public_key = load_public_key(keys_dir / credentials["public_key_file"])
    try:
        return WeChatTrust(
            apiv3_key, credentials["public_key_id"], public_key, credentials.certificate_refresh_s
        )
    except ValueError as error:
        raise KeyMaterialError(f"WeChat Pay credentials: {error}") from None


def notifications(
    client: HttpClient, settings: ProviderSettings, keys_dir: Path, max_skew_s: float
) -> WeChatNotifications:
    """The verifier of WeChat Pay's notifications, trusting what the adapter trusts."""
    trust = wechat_trust(keys_dir, settings.credentials)
    platform = adapter(client, settings, keys_dir).platform
    return WeChatNotifications(
        platform.key_for,
        trust.apiv3_key,
        settings.merchant_id,
        max_skew_s,
        sub_mchid=account_of(settings).sub_mchid,
    )

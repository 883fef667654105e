"""Where each side's keys live, and the dev keys generated on first start.

For every provider there are two key pairs: the merchant's (windowpay signs requests,
the gateway verifies) and the platform's (the gateway signs answers, windowpay
verifies). Layout under keys_dir: <provider>/{merchant,platform}_{private,public}.pem.
A live deployment puts the real merchant private key and platform public key there;
dev keys are generated when missing and are never committed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from orchestrator.providers.signing import KeyPair, generate_key, key_pair, private_pem, public_pem

PROVIDERS = ("wechat", "alipay", "unionpay")


@dataclass(frozen=True)
class ProviderKeys:
    folder: Path

    @property
    def merchant_private(self) -> Path:
        return self.folder / "merchant_private.pem"

    @property
    def merchant_public(self) -> Path:
        return self.folder / "merchant_public.pem"

    @property
    def platform_private(self) -> Path:
        return self.folder / "platform_private.pem"

    @property
    def platform_public(self) -> Path:
        return self.folder / "platform_public.pem"

    def for_merchant(self) -> KeyPair:
        """windowpay's side: sign with the merchant key, verify the platform's."""
        return key_pair(self.merchant_private, self.platform_public)

    def for_platform(self) -> KeyPair:
        """The gateway's (sandbox's) side."""
        return key_pair(self.platform_private, self.merchant_public)


def provider_keys(keys_dir: Path, provider: str) -> ProviderKeys:
    return ProviderKeys(keys_dir / provider)


def receipt_secret_path(keys_dir: Path) -> Path:
    return keys_dir / "receipts" / "check_code.key"


def receipt_secret(keys_dir: Path) -> bytes:
    return bytes.fromhex(receipt_secret_path(keys_dir).read_text().strip())


def ensure_receipt_secret(keys_dir: Path) -> None:
    """The secret that receipt check codes are derived with, made once per deployment."""
    secret = receipt_secret_path(keys_dir)
    if not secret.exists():
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text(os.urandom(32).hex())
        os.chmod(secret, 0o600)


def ensure_dev_keys(keys_dir: Path) -> None:
    """Generate any missing dev key pair (private files readable by the owner only)."""
    for provider in PROVIDERS:
        keys = provider_keys(keys_dir, provider)
        keys.folder.mkdir(parents=True, exist_ok=True)
        for private, public in (
            (keys.merchant_private, keys.merchant_public),
            (keys.platform_private, keys.platform_public),
        ):
            if private.exists() and public.exists():
                continue
            key = generate_key()
            private.write_bytes(private_pem(key))
            os.chmod(private, 0o600)
            public.write_bytes(public_pem(key.public_key()))

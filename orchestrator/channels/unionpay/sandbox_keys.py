"""The UnionPay sandbox gateway's own signing certificate (the platform's side), read from
the dev material under keys_dir/sandbox, and the switch tests use to sign with one
windowpay must not trust."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.channels.unionpay import files
from orchestrator.providers.certificates import (
    Certificate,
    SigningIdentity,
    certificate_pem,
    issue,
    rsa_public_key,
    serial_decimal,
)
from orchestrator.providers.keys import read_certificate, read_identity
from orchestrator.providers.signing import PrivateKey, PublicKey, generate_key


@dataclass
class UnionPayPlatformKeys:
    """Signs answers with the gateway's signing certificate and sends it along
    (signPubKeyCert); verifies requests with the merchant certificate on file."""

    signer: SigningIdentity
    merchant: Certificate

    @property
    def private(self) -> PrivateKey:
        return self.signer.key

    @property
    def own_serial(self) -> str:
        return serial_decimal(self.signer.certificate)

    @property
    def certificate_pem(self) -> str:
        return certificate_pem(self.signer.certificate).decode()

    @property
    def peer_public(self) -> PublicKey:
        return rsa_public_key(self.merchant)

    @property
    def peer_serial(self) -> str:
        return serial_decimal(self.merchant)

    def sign_with_untrusted(self) -> str:
        """Sign with a self-made certificate that chains to no configured root."""
        key = generate_key()
        self.signer = SigningIdentity(key, issue("China UnionPay (forged)", key, None, ca=False))
        return self.own_serial


def unionpay_platform_keys(keys_dir: Path) -> UnionPayPlatformKeys:
    key, cert = files.platform_files(keys_dir)
    return UnionPayPlatformKeys(
        read_identity(key, cert), read_certificate(files.registered_merchant(keys_dir))
    )

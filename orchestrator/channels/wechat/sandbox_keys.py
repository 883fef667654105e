"""The WeChat Pay sandbox gateway's own keys and certificates (the platform's side), read
from the dev material under keys_dir/sandbox, and the switches tests use to rotate a
certificate or sign with one windowpay must not trust."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.channels.wechat import files
from orchestrator.channels.wechat.platform import encrypt_resource
from orchestrator.providers.certificates import (
    Certificate,
    SigningIdentity,
    certificate_pem,
    rsa_public_key,
    serial_hex,
)
from orchestrator.providers.keys import (
    SandboxCa,
    read_certificate,
    read_identity,
    read_secret,
    sandbox_ca,
)
from orchestrator.providers.signing import PrivateKey, PublicKey, load_private_key


@dataclass
class WeChatPlatformKeys:
    """Signs answers with the current platform certificate (or the WeChat Pay public key);
    verifies requests with the merchant certificate it has on file."""

    ca: SandboxCa
    listed: list[SigningIdentity]  # served by /v3/certificates
    merchant: Certificate
    apiv3_key: bytes
    public_key_id: str
    public_key_private: PrivateKey
    signer: SigningIdentity | None = None  # None: the public key
    _unlisted: list[SigningIdentity] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.signer is None:
            self.signer = self.listed[-1]

    @property
    def private(self) -> PrivateKey:
        return self.signer.key if self.signer else self.public_key_private

    @property
    def own_serial(self) -> str:
        return serial_hex(self.signer.certificate) if self.signer else self.public_key_id

    @property
    def peer_public(self) -> PublicKey:
        return rsa_public_key(self.merchant)

    @property
    def peer_serial(self) -> str:
        return serial_hex(self.merchant)

    def rotate(self) -> str:
        """A new platform certificate, served beside the old ones and signing from now."""
        fresh = self.ca.issue("WeChat Pay sandbox platform certificate")
        self.listed.append(fresh)
        self.signer = fresh
        return serial_hex(fresh.certificate)

    def sign_with_unlisted(self) -> str:
        """Sign with a certificate that /v3/certificates never lists."""
        stranger = self.ca.issue("not a WeChat Pay platform certificate")
        self._unlisted.append(stranger)
        self.signer = stranger
        return serial_hex(stranger.certificate)

    def sign_with_public_key(self) -> str:
        self.signer = None
        return self.public_key_id

    def sign_with_listed(self, index: int = -1) -> str:
        self.signer = self.listed[index]
        return serial_hex(self.signer.certificate)

    def certificates_answer(self) -> dict[str, Any]:
        """The /v3/certificates body: every listed certificate, sealed with the APIv3 key."""
        data = []
        for identity in self.listed:
            certificate = identity.certificate
            sealed = encrypt_resource(
                self.apiv3_key,
                certificate_pem(certificate),
                secrets.token_hex(6),  # 12 characters, as the gateway sends
                "certificate",
            )
            data.append(
                {
                    "serial_no": serial_hex(certificate),
                    "effective_time": _iso(certificate.not_valid_before_utc),
                    "expire_time": _iso(certificate.not_valid_after_utc),
                    "encrypt_certificate": sealed,
                }
            )
        return {"data": data}


def wechat_platform_keys(
    keys_dir: Path, apiv3_file: str, apiv3_env: str, public_key_id: str
) -> WeChatPlatformKeys:
    key, cert = files.platform_files(keys_dir)
    return WeChatPlatformKeys(
        ca=sandbox_ca(keys_dir),
        listed=[read_identity(key, cert)],
        merchant=read_certificate(files.merchant_cert(keys_dir)),
        apiv3_key=read_secret(keys_dir, apiv3_file, apiv3_env),
        public_key_id=public_key_id or SANDBOX_PUBLIC_KEY_ID,
        public_key_private=load_private_key(files.pub_key_private(keys_dir)),
    )


SANDBOX_PUBLIC_KEY_ID = "PUB_KEY_ID_0119000001092026112900000001"


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="seconds")

"""The keys each side of the Alipay protocol holds, in public-key mode or in public-key
certificate mode (公钥证书模式), chosen by the configuration: certificate mode when
[providers.ALIPAY] names the three certificate files (docs/PROVIDERS.md).

windowpay signs with the app's private key either way. It verifies Alipay with the
Alipay public key (key mode), or with the key of the Alipay certificate that an answer's
`alipay_cert_sn` names (certificate mode).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.channels.alipay.certs import (
    CertMode,
    cert_mode,
    cert_sn,
    downloaded_key,
    load_certificates,
    root_cert_sn,
    signing_certificates,
)
from orchestrator.channels.alipay.files import alipay_keys
from orchestrator.config import Credentials
from orchestrator.providers.certificates import CertificateError, rsa_public_key
from orchestrator.providers.keys import KeyMaterialError
from orchestrator.providers.signing import (
    PrivateKey,
    PublicKey,
    load_private_key,
    load_public_key,
)

CERTIFICATE_FILES = ("app_cert_file", "alipay_cert_file", "alipay_root_cert_file")


@dataclass(frozen=True)
class AlipayKeys:
    """windowpay's side: the app key it signs with, and Alipay's keys by the SN of their
    certificate ("" in key mode, where there is one key and no certificate)."""

    private: PrivateKey
    alipay: Mapping[str, PublicKey]
    certificates: CertMode | None = None
    # Alipay certificates downloaded since the start (certificate mode), by SN.
    downloaded: dict[str, PublicKey] = field(default_factory=dict)

    def request_params(self) -> dict[str, str]:
        """What a request adds in certificate mode: app_cert_sn, alipay_root_cert_sn."""
        return {} if self.certificates is None else self.certificates.request_params()

    def answer_key(self, alipay_cert_sn: str) -> PublicKey | None:
        """The key that verifies an answer carrying `alipay_cert_sn` (None: no such
        certificate here). An answer without one is verified with the only key."""
        if self.certificates is None or not alipay_cert_sn:
            return next(iter(self.alipay.values())) if len(self.alipay) == 1 else None
        return self.alipay.get(alipay_cert_sn) or self.downloaded.get(alipay_cert_sn)

    def learn(self, alipay_cert_sn: str, pem: bytes, now: dt.datetime) -> PublicKey:
        """Trust a downloaded Alipay certificate that chains to the configured root file
        (CertificateError otherwise), for answers and notifications alike."""
        if self.certificates is None:
            raise CertificateError("not in certificate mode")
        key = downloaded_key(pem, alipay_cert_sn, self.certificates.roots, now)
        self.downloaded[alipay_cert_sn] = key
        return key

    def notice_keys(self) -> list[PublicKey]:
        """Notifications carry no SN: any of Alipay's configured (or downloaded) keys may
        have signed."""
        return [*self.alipay.values(), *self.downloaded.values()]


@dataclass(frozen=True)
class GatewayKeys:
    """The gateway's side (the sandbox's): Alipay's private key, the app's public key,
    and in certificate mode the SNs it expects in requests and puts in its answers."""

    private: PrivateKey
    app_public: PublicKey
    alipay_cert_sn: str = ""
    expected: Mapping[str, str] = field(default_factory=dict)  # app_cert_sn, root SN
    alipay_cert_file: bytes = b""  # its certificate file (PEM, with the intermediate)


def certificate_mode(credentials: Credentials) -> bool:
    """Whether the configuration chose certificate mode: all three files named."""
    named = [name for name in CERTIFICATE_FILES if credentials[name]]
    if named and len(named) != len(CERTIFICATE_FILES):
        missing = ", ".join(n for n in CERTIFICATE_FILES if n not in named)
        raise KeyMaterialError(f"Alipay certificate mode needs {missing} as well")
    return bool(named)


def _read(keys_dir: Path, name: str, credentials: Credentials) -> bytes:
    path = keys_dir / credentials[name]
    try:
        return path.read_bytes()
    except OSError as error:
        raise KeyMaterialError(f"{name}: cannot read {path}: {error.strerror}") from None


def merchant_keys(
    keys_dir: Path, credentials: Credentials, now: dt.datetime | None = None
) -> AlipayKeys:
    files = alipay_keys(keys_dir)
    private = load_private_key(files.merchant_private)
    if not certificate_mode(credentials):
        return AlipayKeys(private, {"": load_public_key(files.platform_public)})
    app, alipay, roots = (_read(keys_dir, name, credentials) for name in CERTIFICATE_FILES)
    try:
        mode = cert_mode(private, app, alipay, roots, now or dt.datetime.now(dt.UTC))
    except CertificateError as error:
        raise KeyMaterialError(f"Alipay certificate mode: {error}") from None
    return AlipayKeys(private, mode.alipay_keys, mode)


def gateway_keys(keys_dir: Path, credentials: Credentials) -> GatewayKeys:
    files = alipay_keys(keys_dir)
    private = load_private_key(files.platform_private)
    if not certificate_mode(credentials):
        return GatewayKeys(private, load_public_key(files.merchant_public))
    pems = [_read(keys_dir, name, credentials) for name in CERTIFICATE_FILES]
    app, alipay, roots = (load_certificates(pem) for pem in pems)
    own = private.public_key().public_numbers()
    mine = [c for c in signing_certificates(alipay) if rsa_public_key(c).public_numbers() == own]
    if not mine:
        raise KeyMaterialError("alipay_cert_file holds no certificate of the sandbox's key")
    expected = CertMode(cert_sn(app[0]), root_cert_sn(roots), {}).request_params()
    return GatewayKeys(private, rsa_public_key(app[0]), cert_sn(mine[0]), expected, pems[1])

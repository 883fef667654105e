"""UnionPay ACP's keys: windowpay signs with the key of its signing certificate (from a
PKCS#12 .pfx) and sends that certificate's serial as certId; every answer carries the
gateway's signing certificate (signPubKeyCert), which is used only once it chains to
the configured UnionPay root and intermediate, and only if its serial is the answer's
certId."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.providers.certificates import (
    Certificate,
    CertificateError,
    ChainTrust,
    SigningIdentity,
    common_name,
    rsa_public_key,
    serial_decimal,
)
from orchestrator.providers.signing import PrivateKey, PublicKey


@dataclass(frozen=True)
class UnionPayKeys:
    identity: SigningIdentity
    root: Certificate
    middle: Certificate
    signer_name: str = ""  # when set, the signPubKeyCert's common name must contain it
    _trust: ChainTrust = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_trust", ChainTrust(self.root, [self.middle]))

    @property
    def private(self) -> PrivateKey:
        return self.identity.key

    @property
    def own_serial(self) -> str:
        """certId: the signing certificate's serial number in decimal."""
        return serial_decimal(self.identity.certificate)

    def answer_key(self, fields: Mapping[str, str], now: dt.datetime) -> PublicKey:
        """The key that verifies an answer: its signPubKeyCert, once trusted."""
        pem = fields.get("signPubKeyCert", "")
        if not pem:
            raise CertificateError("answer carries no signPubKeyCert")
        certificate = self._trust.certificate(pem.encode(), now)
        if serial_decimal(certificate) != fields.get("certId"):
            raise CertificateError("answer certId is not its signPubKeyCert's serial")
        if self.signer_name and self.signer_name not in common_name(certificate):
            raise CertificateError(f"signPubKeyCert is not {self.signer_name}'s")
        return rsa_public_key(certificate)

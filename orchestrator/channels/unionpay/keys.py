"""UnionPay ACP's keys: windowpay signs with the key of its signing certificate (from a
PKCS#12 .pfx) and sends that certificate's serial as certId. A 5.1.0 answer or
notification names no certId: it carries the gateway's signing certificate
(signPubKeyCert), which is used only once it chains to the configured UnionPay root and
intermediate and its holder is UnionPay's signer, as the ACP SDK checks it (the third
`@`-part of the CN, wire.holder_name)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.channels.unionpay.wire import holder_name
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

# The holder name of the sandbox gateway's signing certificate (files.make_dev_keys). An
# empty signer_name means this name: a live channel without signer_name is refused at
# start (the channel's defaults.toml lists it under live_requires).
SANDBOX_SIGNER = "windowpay sandbox:SIGN"


@dataclass(frozen=True)
class UnionPayKeys:
    identity: SigningIdentity
    root: Certificate
    middle: Certificate
    # The holder the signPubKeyCert must name: UnionPay's legal name 中国银联股份有限公司
    # live; the SDK's test environment also signs as 00040000:SIGN.
    signer_name: str = ""
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

    @property
    def expected_signer(self) -> str:
        return self.signer_name or SANDBOX_SIGNER

    def answer_key(self, fields: Mapping[str, str], now: dt.datetime) -> PublicKey:
        """The key that verifies an answer: its signPubKeyCert, once trusted."""
        pem = fields.get("signPubKeyCert", "")
        if not pem:
            raise CertificateError("answer carries no signPubKeyCert")
        certificate = self._trust.certificate(pem.encode(), now)
        holder = holder_name(common_name(certificate))
        if holder != self.expected_signer:
            raise CertificateError(
                f"signPubKeyCert's holder is {holder!r}, not {self.expected_signer!r}"
            )
        return rsa_public_key(certificate)

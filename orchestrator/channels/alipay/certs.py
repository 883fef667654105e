"""Alipay's public-key certificate mode (公钥证书模式): the serial numbers ("SN") the
gateway names certificates by, and the trust in Alipay's public certificates.

A certificate's SN is the MD5, in lower-case hex, of its issuer's distinguished name
(RFC 2253 order, as Java prints it: "CN=...,OU=...,O=...,C=...") followed by its serial
number in decimal. The root SN joins, with "_", the SNs of the root file's certificates
signed with an RSA algorithm (OID 1.2.840.113549.1.1.*); the others (ECC, SM2) are left
out. Requests carry `app_cert_sn` and `alipay_root_cert_sn`; every answer carries
`alipay_cert_sn`, the SN of the Alipay certificate whose key signed it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509

from orchestrator.providers.certificates import (
    Certificate,
    CertificateError,
    rsa_public_key,
    verify_chain,
    within_validity,
)
from orchestrator.providers.signing import PrivateKey, PublicKey

RSA_SIGNATURES = "1.2.840.113549.1.1."
PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)


def load_certificates(pem: bytes) -> list[Certificate]:
    """The RSA-signed certificates of a PEM file (Alipay's files hold a chain, or several
    roots). The others are skipped unread: Alipay's root file also holds ECC and SM2
    roots that neither count in its SN nor sign an RSA2 certificate, and that the
    cryptography library cannot parse (SM2) or refuses (an ECDSA root with NULL
    parameters)."""
    certificates = []
    for block in PEM_BLOCK.findall(pem):
        try:
            der = base64.b64decode(b"".join(block.split()), validate=True)
        except binascii.Error:
            raise CertificateError("a certificate block is not base64") from None
        if not signature_oid(der).startswith(RSA_SIGNATURES):
            continue
        try:
            certificates.append(x509.load_der_x509_certificate(der))
        except ValueError as error:
            raise CertificateError(f"cannot read a certificate: {error}") from None
    if not certificates:
        raise CertificateError("no RSA certificate in the file")
    return certificates


def _element(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `at`."""
    if at + 2 > len(der):
        raise CertificateError("truncated DER")
    tag, length, start = der[at], der[at + 1], at + 2
    if length & 0x80:
        size = length & 0x7F
        if size == 0 or size > 4 or start + size > len(der):
            raise CertificateError("bad DER length")
        length, start = int.from_bytes(der[start : start + size], "big"), start + size
    if start + length > len(der):
        raise CertificateError("truncated DER")
    return tag, start, start + length


def signature_oid(der: bytes) -> str:
    """The outer signatureAlgorithm OID of a DER certificate (SEQUENCE { tbs,
    AlgorithmIdentifier, signature }), read without parsing the rest."""
    _, body, _ = _element(der, 0)
    _, _, tbs_end = _element(der, body)
    _, algorithm, _ = _element(der, tbs_end)
    tag, start, end = _element(der, algorithm)
    if tag != 0x06 or start == end:
        raise CertificateError("no signature algorithm OID")
    arcs = [der[start] // 40, der[start] % 40] if der[start] < 80 else [2, der[start] - 80]
    value = 0
    for byte in der[start + 1 : end]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def cert_sn(certificate: Certificate) -> str:
    issuer = certificate.issuer.rfc4514_string()
    text = f"{issuer}{certificate.serial_number}"
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def root_cert_sn(roots: Sequence[Certificate]) -> str:
    """The SN of a root file read by load_certificates (its RSA-signed roots, in order)."""
    return "_".join(cert_sn(root) for root in roots)


def signing_certificates(certificates: Sequence[Certificate]) -> list[Certificate]:
    """The certificates of a file that issue none of the others: Alipay's own, not the
    intermediate its file carries after it (which need not say it is a CA). A file put
    together from two of Alipay's (a certificate being replaced) holds two."""
    issuers = {c.issuer for c in certificates}
    return [c for c in certificates if c.subject not in issuers]


def alipay_keys(alipay_certs: Sequence[Certificate], now: dt.datetime) -> dict[str, PublicKey]:
    """The signing keys of Alipay's public certificates, by SN. The file is trusted as
    configured, like the public key of public-key mode and as Alipay's SDKs do: it comes
    from the open platform, and it need not chain to the root file (the sandbox's do not;
    a production file may hold the signing certificate alone). It must be in date."""
    leaves = signing_certificates(alipay_certs)
    if not leaves:
        raise CertificateError("the Alipay certificate file holds no signing certificate")
    keys = {}
    for leaf in leaves:
        if not within_validity(leaf, now):
            raise CertificateError(_dates(f"the Alipay certificate {cert_sn(leaf)}", leaf))
        keys[cert_sn(leaf)] = rsa_public_key(leaf)
    return keys


def _dates(what: str, certificate: Certificate) -> str:
    return (
        f"{what} is valid from {certificate.not_valid_before_utc:%Y-%m-%d} "
        f"to {certificate.not_valid_after_utc:%Y-%m-%d}"
    )


def downloaded_key(
    pem: bytes, sn: str, roots: Sequence[Certificate], now: dt.datetime
) -> PublicKey:
    """The key of the Alipay certificate `sn` from a downloaded certificate file (the
    certificate and its intermediates), trusted only when it chains to one of the
    configured roots and every link is in date, as Alipay's SDKs check a downloaded
    certificate. Alipay's intermediates need not be marked as CAs (the sandbox's is
    not), so that is not asked. Else CertificateError."""
    certificates = load_certificates(pem)
    leaf = next((c for c in certificates if cert_sn(c) == sn), None)
    if leaf is None:
        raise CertificateError(f"the downloaded file holds no certificate {sn}")
    chain, rest = [], [c for c in certificates if c is not leaf]
    issuer = leaf.issuer
    while (parent := next((c for c in rest if c.subject == issuer), None)) is not None:
        chain.append(parent)
        rest.remove(parent)
        issuer = parent.issuer
    problems = []
    for root in roots:
        try:
            verify_chain(leaf, chain, root, now, issuers_marked_ca=False)
        except CertificateError as error:
            problems.append(str(error))
        else:
            return rsa_public_key(leaf)
    raise CertificateError(f"certificate {sn} does not chain to the root file: {problems}")


@dataclass(frozen=True)
class CertMode:
    """What certificate mode adds to a request, the Alipay keys by SN, and the roots a
    downloaded Alipay certificate must chain to."""

    app_cert_sn: str
    root_cert_sn: str
    alipay_keys: Mapping[str, PublicKey]
    roots: Sequence[Certificate] = ()

    def request_params(self) -> dict[str, str]:
        return {"app_cert_sn": self.app_cert_sn, "alipay_root_cert_sn": self.root_cert_sn}


def cert_mode(
    app_private: PrivateKey,
    app_cert: bytes,
    alipay_certs: bytes,
    root_certs: bytes,
    now: dt.datetime,
) -> CertMode:
    """Certificate mode from the three files Alipay's open platform hands out, checked:
    the app certificate is the app key's, both are in date."""
    [app, *_] = load_certificates(app_cert)
    if rsa_public_key(app).public_numbers() != app_private.public_key().public_numbers():
        raise CertificateError("the app certificate is not the certificate of the app's key")
    if not within_validity(app, now):
        raise CertificateError(_dates("the app certificate", app))
    roots = load_certificates(root_certs)
    keys = alipay_keys(load_certificates(alipay_certs), now)
    return CertMode(cert_sn(app), root_cert_sn(roots), keys, tuple(roots))

"""X.509 certificates: issuing them (the sandbox CA's dev material), reading a PKCS#12
.pfx, the serial forms each provider uses, and verifying a certificate against a
configured root and intermediate."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from orchestrator.providers.signing import PrivateKey, PublicKey

Certificate = x509.Certificate


class CertificateError(ValueError):
    """A certificate that cannot be used: unreadable, out of date or not trusted."""


def serial_hex(certificate: Certificate) -> str:
    """The serial number in upper-case hex (how WeChat Pay names a certificate)."""
    return f"{certificate.serial_number:X}"


def serial_decimal(certificate: Certificate) -> str:
    """The serial number in decimal (UnionPay ACP's certId)."""
    return str(certificate.serial_number)


def rsa_public_key(certificate: Certificate) -> PublicKey:
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CertificateError(f"{certificate.subject.rfc4514_string()}: not an RSA key")
    return key


def load_pem_certificate(data: bytes) -> Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as error:
        raise CertificateError(f"not a PEM certificate: {error}") from None


def certificate_pem(certificate: Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def issue(
    subject_name: str,
    key: PrivateKey,
    issuer: tuple[Certificate, PrivateKey] | None,
    *,
    ca: bool,
    days: int = 3650,
    now: dt.datetime | None = None,
) -> Certificate:
    """A certificate for `key`, signed by `issuer` (self-signed when None)."""
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "windowpay sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, subject_name),
        ]
    )
    issuer_name = issuer[0].subject if issuer else subject
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(signing_key, hashes.SHA256())


@dataclass(frozen=True)
class SigningIdentity:
    """A private key and the certificate that names it."""

    key: PrivateKey
    certificate: Certificate


def pfx_bytes(identity: SigningIdentity, password: bytes, name: str) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        name.encode(),
        identity.key,
        identity.certificate,
        None,
        serialization.BestAvailableEncryption(password),
    )


def load_pfx(data: bytes, password: bytes) -> SigningIdentity:
    """The signing key and certificate of a PKCS#12 file (a UnionPay acp_sign.pfx)."""
    try:
        key, certificate, _ = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        raise CertificateError("cannot open the .pfx: wrong password or damaged file") from None
    if not isinstance(key, rsa.RSAPrivateKey) or certificate is None:
        raise CertificateError("the .pfx must hold an RSA key and its certificate")
    if key.public_key().public_numbers() != rsa_public_key(certificate).public_numbers():
        raise CertificateError("the .pfx certificate does not belong to its key")
    return SigningIdentity(key, certificate)


def common_name(certificate: Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def within_validity(certificate: Certificate, now: dt.datetime) -> bool:
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc


def verify_chain(
    leaf: Certificate,
    intermediates: Sequence[Certificate],
    root: Certificate,
    now: dt.datetime,
    *,
    issuers_marked_ca: bool = True,
) -> None:
    """Raise CertificateError unless leaf <- intermediates... <- root, every link signed
    by the next, every issuer a CA (unless `issuers_marked_ca` is False: Alipay's
    intermediates need not say so), and every certificate within its validity at `now`."""
    chain = [leaf, *intermediates, root]
    for certificate in chain:
        if not within_validity(certificate, now):
            raise CertificateError(f"{_name(certificate)} is not valid at {now:%Y-%m-%d %H:%M}")
    for child, parent in itertools.pairwise(chain):
        if issuers_marked_ca and not _is_ca(parent):
            raise CertificateError(f"{_name(parent)} is not a CA")
        if not _issued_by(child, parent):
            raise CertificateError(f"{_name(child)} is not issued by {_name(parent)}")


def _issued_by(child: Certificate, parent: Certificate) -> bool:
    """The child names the parent as its issuer and carries its RSA PKCS#1 v1.5
    signature. Written out rather than cryptography's verify_directly_issued_by, which
    refuses SHA-1: UnionPay's CFCA root, intermediate and signing certificates (test and
    production alike) are all signed with sha1WithRSAEncryption.

    The child may come from anyone (a notification's signPubKeyCert): an algorithm the
    library does not know, or a name it cannot parse, is "not issued by", never an
    error of another kind."""
    try:
        key, algorithm = parent.public_key(), child.signature_hash_algorithm
        if child.issuer != parent.subject or not isinstance(key, rsa.RSAPublicKey):
            return False
        if algorithm is None:
            return False
        key.verify(child.signature, child.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return True


def _is_ca(certificate: Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def _name(certificate: Certificate) -> str:
    try:
        return certificate.subject.rfc4514_string()
    except ValueError:  # a subject the library cannot parse: named by its serial
        return f"certificate {certificate.serial_number}"


class ChainTrust:
    """Certificates accepted when they chain to a configured root through configured
    intermediates; each one verified once and remembered until it expires."""

    def __init__(self, root: Certificate, intermediates: Sequence[Certificate]) -> None:
        self._root = root
        self._intermediates = list(intermediates)
        self._verified: dict[bytes, Certificate] = {}

    def certificate(self, pem: bytes, now: dt.datetime) -> Certificate:
        """The certificate of `pem` once trusted at `now`; else CertificateError."""
        known = self._verified.get(pem)
        if known is not None and within_validity(known, now):
            return known
        leaf = load_pem_certificate(pem)
        verify_chain(leaf, self._intermediates, self._root, now)
        if _is_ca(leaf):
            raise CertificateError(f"{_name(leaf)} is a CA, not a signing certificate")
        self._verified[pem] = leaf
        return leaf

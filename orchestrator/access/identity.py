"""Who a client certificate names, and whether it names them for this deployment.

TLS has already checked that the certificate chains to a CA of `ca_file`. A role needs
more, since a CA may issue certificates for other purposes (a shared production CA
issues a `CN=backoffice` to whoever asks for one):

* the certificate is signed directly by this deployment's issuing CA (`[access]
  client_ca_file`, else the CA of `ca_file`), checked with that CA's public key of any
  type (RSA, EC, Ed25519, ...);
* it carries, in its subjectAltName, the URI `spiffe://<trust_domain>/windowpay/<name>`
  (`[access] trust_domain`), and `<name>` is its common name.

A certificate that lacks either is nobody here: it gets no role, whatever its name."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)


def identity_uri(trust_domain: str, name: str) -> str:
    """The subjectAltName URI that binds a principal's certificate to the deployment."""
    return f"spiffe://{trust_domain}/windowpay/{name}"


@dataclass(frozen=True, slots=True)
class Presented:
    """What a client certificate says: its name and serial, and why it binds no
    principal of this deployment (None: it does)."""

    name: str
    serial: int
    unbound: str | None


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def bound_names(cert: x509.Certificate, trust_domain: str) -> list[str]:
    """The principal names the certificate's URIs give it under `trust_domain`."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    prefix = identity_uri(trust_domain, "")
    return [
        uri[len(prefix) :]
        for uri in sans.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith(prefix)
    ]


class Identities:
    """Reads client certificates (PEM, as gRPC hands them over). The access interceptor
    remembers what each certificate it has seen resolves to (interceptor.Callers)."""

    def __init__(self, issuer_cert: Path, trust_domain: str) -> None:
        self._issuer = x509.load_pem_x509_certificate(issuer_cert.read_bytes())
        self._trust_domain = trust_domain

    def of(self, pem: bytes) -> Presented:
        cert = x509.load_pem_x509_certificate(pem)
        name = common_name(cert)
        try:
            cert.verify_directly_issued_by(self._issuer)
        except (ValueError, TypeError, InvalidSignature):
            return Presented(name, cert.serial_number, "not issued by this deployment's CA")
        bound = bound_names(cert, self._trust_domain)
        if bound != [name]:
            return Presented(
                name,
                cert.serial_number,
                f"no subjectAltName {identity_uri(self._trust_domain, name)}",
            )
        return Presented(name, cert.serial_number, None)

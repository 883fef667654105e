"""A small certificate authority for the front door's mutual TLS, and the development
HTTPS of the console and the notification listener.

`windowpay pki init` makes, under the PKI directory: `ca.crt` + `ca.key`, `crl.pem`
(the CA's revocation list, empty at first), `server.crt` + `server.key` (the front door;
SANs 127.0.0.1 and localhost), `web.crt` + `web.key` (the console and the listener; the
same SANs), and `clients/<name>.crt` + `.key` for every principal, each carrying
the subjectAltName URI that binds it to the deployment (access/identity.py). Keys are EC
P-256 (a CA made for a test may have another type), written 0600 from the first byte;
nothing is ever generated over an existing file. Revoking a certificate adds its serial
to `crl.pem` and moves its files to `clients/revoked/`, so that a new one can be issued
under the same name.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from orchestrator.access.identity import bound_names, identity_uri
from orchestrator.files import create_file, create_secret, replace_file

CA_DAYS = 3650
CERT_DAYS = 825
LOOPBACK = ("127.0.0.1", "localhost")  # the servers' SANs: development listens on loopback
DEFAULT_TRUST_DOMAIN = "windowpay"

SigningKey = (
    ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)  # fmt: skip


class PkiError(RuntimeError):
    pass


@dataclass(frozen=True)
class PkiPaths:
    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    @property
    def web_cert(self) -> Path:
        return self.root / "web.crt"

    @property
    def web_key(self) -> Path:
        return self.root / "web.key"

    @property
    def crl(self) -> Path:
        return self.root / "crl.pem"

    @property
    def revoked(self) -> Path:
        """Every serial this CA revoked and the number of its last list: what each new
        list is made from, whatever became of crl.pem."""
        return self.root / "revoked.json"

    @property
    def clients(self) -> Path:
        return self.root / "clients"

    def client_cert(self, name: str) -> Path:
        return self.clients / f"{name}.crt"

    def client_key(self, name: str) -> Path:
        return self.clients / f"{name}.key"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _digest(key: SigningKey) -> hashes.SHA256 | None:
    """EdDSA keys sign the message itself; the others a SHA-256 digest."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def _key_pem(key: SigningKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "windowpay"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_pair(cert_path: Path, key_path: Path, cert: x509.Certificate, key: bytes) -> None:
    """The key first (0600), then the certificate that makes it usable."""
    create_secret(key_path, key)
    create_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _absent(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            raise PkiError(f"{path} already exists; nothing is generated over an existing file")


class Authority:
    """The CA of one PKI directory."""

    def __init__(self, paths: PkiPaths) -> None:
        self.paths = paths
        try:
            self.cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
            key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), None)
        except (OSError, ValueError) as error:
            raise PkiError(f"cannot read the CA in {paths.root}: {error}") from None
        if not isinstance(key, SigningKey):
            raise PkiError(f"{paths.ca_key}: not a key that signs certificates")
        self._key: SigningKey = key

    @classmethod
    def create(
        cls,
        paths: PkiPaths,
        name: str = "windowpay development CA",
        key: SigningKey | None = None,
    ) -> Authority:
        _absent(paths.ca_cert, paths.ca_key)
        key = key or _key()
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, _digest(key))
        )
        _write_pair(paths.ca_cert, paths.ca_key, cert, _key_pem(key))
        authority = cls(paths)
        authority.write_crl()
        return authority

    def _issue(
        self, common_name: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]
    ) -> tuple[x509.Certificate, bytes]:
        key = _key()
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self._key, _digest(self._key)), _key_pem(key)

    def issue_server(self, hosts: Iterable[str] = LOOPBACK) -> None:
        """The front door's certificate."""
        self._issue_host(
            self.paths.server_cert, self.paths.server_key, "windowpay front door", hosts
        )

    def issue_web(self, hosts: Iterable[str] = LOOPBACK) -> None:
        """The HTTPS certificate of the console and the notification listener: a key of
        their own, apart from the front door's."""
        self._issue_host(self.paths.web_cert, self.paths.web_key, "windowpay web", hosts)

    def _issue_host(self, cert_path: Path, key_path: Path, name: str, hosts: Iterable[str]) -> None:
        _absent(cert_path, key_path)
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        cert, key = self._issue(name, ExtendedKeyUsageOID.SERVER_AUTH, sans)
        _write_pair(cert_path, key_path, cert, key)

    def issue_client(self, name: str, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> None:
        """A principal's certificate: its name as common name and, in its
        subjectAltName, the URI that binds it to this deployment."""
        paths = self.paths
        _absent(paths.client_cert(name), paths.client_key(name))
        uri = x509.UniformResourceIdentifier(identity_uri(trust_domain, name))
        cert, key = self._issue(name, ExtendedKeyUsageOID.CLIENT_AUTH, [uri])
        _write_pair(paths.client_cert(name), paths.client_key(name), cert, key)

    def _register(self) -> tuple[set[int], int]:
        try:
            data = json.loads(self.paths.revoked.read_bytes())
            return {int(s, 16) for s in data["serials"]}, int(data["crl_number"])
        except FileNotFoundError:
            return set(), 0
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise PkiError(
                f"{self.paths.revoked} is unreadable ({error}); restore it from a backup: "
                "no revocation list is written without it"
            ) from None

    def _current_list(self) -> x509.CertificateRevocationList | None:
        try:
            return x509.load_pem_x509_crl(self.paths.crl.read_bytes())
        except (OSError, ValueError):
            return None  # the register and the certificates set aside still say it all

    def revoked_serials(self) -> set[int]:
        """Every serial revoked so far: the register's, the current list's (a list made
        before the register existed) and those of the certificates set aside as revoked.
        A missing crl.pem forgets none of them."""
        serials, _ = self._register()
        crl = self._current_list()
        if crl is not None and crl.issuer == self.cert.subject:
            serials |= {entry.serial_number for entry in crl}
        for path in sorted((self.paths.clients / "revoked").glob("*.crt")):
            serials.add(x509.load_pem_x509_certificate(path.read_bytes()).serial_number)
        return serials

    def _last_number(self) -> int:
        _, number = self._register()
        crl = self._current_list()
        if crl is not None and crl.issuer == self.cert.subject:
            try:
                ext = crl.extensions.get_extension_for_class(x509.CRLNumber)
                number = max(number, ext.value.crl_number)
            except x509.ExtensionNotFound:
                pass
        return number

    def write_crl(self, serials: Iterable[int] = ()) -> None:
        """A new list, numbered one above the last, revoking `serials` and every serial
        revoked before: the register is written first, then the list."""
        revoked = self.revoked_serials() | set(serials)
        number = self._last_number() + 1
        register = {"crl_number": number, "serials": [f"{s:x}" for s in sorted(revoked)]}
        replace_file(self.paths.revoked, json.dumps(register, indent=1).encode(), mode=0o644)
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now)
            .next_update(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for serial in sorted(revoked):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
            )
        crl = builder.sign(self._key, _digest(self._key))
        replace_file(self.paths.crl, crl.public_bytes(serialization.Encoding.PEM), mode=0o644)

    def revoke_client(self, name: str) -> int:
        """Revoke the certificate issued to `name`; returns its serial."""
        paths = self.paths
        try:
            cert = x509.load_pem_x509_certificate(paths.client_cert(name).read_bytes())
        except FileNotFoundError:
            raise PkiError(f"no certificate for {name} in {paths.clients}") from None
        serial = cert.serial_number
        self.write_crl({serial})
        self._set_aside(name, serial, "revoked")
        return serial

    def _set_aside(self, name: str, serial: int, folder: str) -> None:
        kept = self.paths.clients / folder
        kept.mkdir(exist_ok=True)
        self.paths.client_cert(name).rename(kept / f"{name}-{serial:x}.crt")
        if self.paths.client_key(name).exists():
            self.paths.client_key(name).rename(kept / f"{name}-{serial:x}.key")

    def rebind_client(self, name: str, trust_domain: str) -> bool:
        """Replace a certificate of this CA that lacks the deployment's binding (one made
        before certificates carried it): set aside under `clients/unbound/`, issued
        again. True when it was replaced."""
        cert = x509.load_pem_x509_certificate(self.paths.client_cert(name).read_bytes())
        if bound_names(cert, trust_domain) == [name]:
            return False
        self._set_aside(name, cert.serial_number, "unbound")
        self.issue_client(name, trust_domain)
        return True


def _missing(cert: Path, key: Path) -> bool:
    """True when neither file exists; half a pair is an error, never completed over."""
    if cert.exists() != key.exists():
        there = cert if cert.exists() else key
        raise PkiError(f"{there} exists without its other half; move it away or restore it")
    return not cert.exists()


def init(
    root: Path, principals: Iterable[str], trust_domain: str = DEFAULT_TRUST_DOMAIN
) -> list[str]:
    """Make whatever of the development PKI is missing (a principal's binding to the
    deployment included); returns what was made."""
    paths = PkiPaths(root)
    made: list[str] = []
    if _missing(paths.ca_cert, paths.ca_key):
        Authority.create(paths)
        made.append("CA")
    authority = Authority(paths)
    if not paths.crl.exists():
        authority.write_crl()
    if _missing(paths.server_cert, paths.server_key):
        authority.issue_server()
        made.append("server")
    if _missing(paths.web_cert, paths.web_key):
        authority.issue_web()
        made.append("web")
    for name in principals:
        if _missing(paths.client_cert(name), paths.client_key(name)):
            authority.issue_client(name, trust_domain)
            made.append(name)
        elif authority.rebind_client(name, trust_domain):
            made.append(f"{name} (bound again)")
    return made

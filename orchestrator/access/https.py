"""The TLS of windowpay's HTTP servers, the staff console and the providers'
notification listener: which certificate each serves (ServedTls, from the config's
[console] and [notify]) and the server context made from it.

The context is today's usual modern one: TLS 1.2 at least; in TLS 1.2 only suites with an
ephemeral ECDH key exchange and an AEAD cipher (TLS 1.3's are all so); no compression, no
renegotiation. docs/SECURITY.md ("What the scanners say") has what sslyze finds on it."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.access.pki import PkiError, PkiPaths
from orchestrator.access.setup import pki_dir
from orchestrator.config import Config, ServedTls

# OpenSSL's names: ECDHE key exchange (forward secret) with AES-GCM or ChaCha20-Poly1305.
TLS12_SUITES = "ECDHE+AESGCM:ECDHE+CHACHA20"


@dataclass(frozen=True)
class WebTls:
    """The certificate one server presents, and the CA that issued it when it is the
    development PKI's (whoever posts to it on this machine, the sandboxes, trusts that)."""

    where: str  # the config table: "console" or "notify"
    cert: Path
    key: Path
    dev_ca: Path | None = None

    def context(self) -> ssl.SSLContext:
        """PkiError naming the setting when the certificate or key cannot be used."""
        try:
            return server_context(self.cert, self.key)
        except (OSError, ssl.SSLError) as error:
            raise PkiError(
                f"[{self.where}] cannot serve TLS with {self.cert} and {self.key}: {error}"
            ) from None


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_SUITES)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(cert, key)
    return context


def web_tls(config: Config, where: Literal["console", "notify"], data_dir: Path) -> WebTls | None:
    """How the server of the config's table `where` ("console" or "notify") is reached:
    None for plain HTTP (plain_http = true, a TLS reverse proxy in front). PkiError when
    a deployment with certificates made elsewhere names none for it."""
    tls: ServedTls = config.console.tls if where == "console" else config.notify.tls
    if tls.plain_http:
        return None
    if tls.cert_file:
        return WebTls(where, Path(tls.cert_file), Path(tls.key_file))
    if config.access.provisioned:
        raise PkiError(
            f"[{where}]: the certificates are made elsewhere ([access] ca_file), so name "
            f"this server's too (tls_cert_file, tls_key_file), or set plain_http = true "
            f"for a TLS reverse proxy in front of it"
        )
    paths = PkiPaths(pki_dir(config.access, data_dir))
    return WebTls(where, paths.web_cert, paths.web_key, paths.ca_cert)


def served_url(tls: bool, host: str, port: int) -> str:
    """A server's own base URL; one listening on every address is reached on loopback
    (a name the development certificate has)."""
    shown = "127.0.0.1" if _every_address(host) else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def _every_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:  # a name
        return not host

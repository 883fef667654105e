"""The client side of mutual TLS: which certificate a command presents, and the channel
made with it.

A principal's files are found in the development PKI that a running `windowpay serve`
names in `<data-dir>/run.json` (`clients/<principal>.crt` and `.key`, and `ca.crt`), or
are given with --cert/--key/--ca (production, or a certificate made elsewhere)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import grpc

from orchestrator.access.pki import PkiPaths
from orchestrator.runfile import RunInfo


class IdentityError(RuntimeError):
    pass


@dataclass(frozen=True)
class Identity:
    """A principal's certificate and key, and the CA that signs the front door's."""

    principal: str
    ca: bytes
    cert: bytes
    key: bytes

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def channel(
        self, target: str, options: list[tuple[str, object]] | None = None
    ) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(target, self.credentials(), options=options)

    def sync_channel(
        self, target: str, options: list[tuple[str, object]] | None = None
    ) -> grpc.Channel:
        return grpc.secure_channel(target, self.credentials(), options=options)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise IdentityError(f"cannot read the {what} {path}: {error.strerror}") from None


def of_pki(pki_dir: Path, principal: str) -> Identity:
    """A principal's identity from a PKI directory made by `windowpay pki`."""
    paths = PkiPaths(pki_dir)
    return Identity(
        principal,
        _read(paths.ca_cert, "CA certificate"),
        _read(paths.client_cert(principal), f"certificate of {principal}"),
        _read(paths.client_key(principal), f"key of {principal}"),
    )


def resolve(
    principal: str,
    *,
    data_dir: Path = Path("var"),
    cert: Path | None = None,
    key: Path | None = None,
    ca: Path | None = None,
) -> Identity:
    """--cert/--key/--ca when given, else the principal's files through run.json."""
    if cert or key:
        if not (cert and key):
            raise IdentityError("--cert and --key go together")
        info = RunInfo.read(data_dir)
        ca_path = ca or (Path(info.ca) if info and info.ca else None)
        if ca_path is None:
            raise IdentityError("--ca is required (no running deployment names its CA)")
        return Identity(
            principal,
            _read(ca_path, "CA certificate"),
            _read(cert, "certificate"),
            _read(key, "key"),
        )
    info = RunInfo.read(data_dir)
    if info is None or not info.pki_dir:
        raise IdentityError(
            f"no certificates: {data_dir / 'run.json'} names no PKI directory "
            "(is `windowpay serve` running?); give --cert, --key and --ca"
        )
    identity = of_pki(Path(info.pki_dir), principal)
    if ca is not None:
        identity = Identity(principal, _read(ca, "CA certificate"), identity.cert, identity.key)
    return identity


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("identity (mutual TLS)")
    group.add_argument("--cert", type=Path, help="client certificate (default: from run.json)")
    group.add_argument("--key", type=Path, help="its private key")
    group.add_argument("--ca", type=Path, help="CA that signed the front door's certificate")


def from_args(args: argparse.Namespace, principal: str) -> Identity:
    return resolve(principal, data_dir=args.data_dir, cert=args.cert, key=args.key, ca=args.ca)

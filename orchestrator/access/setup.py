"""The front door's side of access, from the config: its TLS files (a development PKI
made on first start unless the config names certificates made elsewhere), the
principals and their certificates' binding, the revocation list (watched, ending the
open streams of what it revokes) and the limits."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from orchestrator.access import pki
from orchestrator.access.identity import Identities
from orchestrator.access.interceptor import AccessInterceptor
from orchestrator.access.limits import Gate
from orchestrator.access.policy import Scope
from orchestrator.access.revocation import Revocations
from orchestrator.access.streams import OpenStreams
from orchestrator.access.tls import ServerTls
from orchestrator.config import Config
from orchestrator.domain.principals import AccessSettings, Directory

log = logging.getLogger(__name__)


def pki_dir(access: AccessSettings, data_dir: Path) -> Path:
    return (data_dir / access.pki_dir).resolve()


def directory(config: Config) -> Directory:
    deployment = config.deployment
    return Directory(config.access, deployment.terminal_window, deployment.window_service_point)


def point_offices(config: Config) -> dict[str, str]:
    """Each service point's office today, for the scope of one office's principals."""
    places = config.deployment.places
    if not places.explicit:
        return {}
    return {sp.id: places.place_of(sp.id).office_id for sp in config.deployment.service_points}


def server_tls(config: Config, data_dir: Path, *, create: bool) -> ServerTls:
    """The files the front door serves with; the dev PKI is made first when allowed.
    RevocationError, before anything starts, when the revocation list cannot be taken."""
    tls = _files(config, data_dir, create=create)
    Revocations(tls.crl, tls.client_ca)
    return tls


def _files(config: Config, data_dir: Path, *, create: bool) -> ServerTls:
    access = config.access
    if access.provisioned:
        return ServerTls(
            Path(access.ca_file),
            Path(access.server_cert_file),
            Path(access.server_key_file),
            Path(access.crl_file) if access.crl_file else None,
            Path(access.client_ca_file or access.ca_file),
        )
    root = pki_dir(access, data_dir)
    if create:
        made = pki.init(root, directory(config).names(), access.trust_domain)
        if made:
            log.info("development PKI in %s: made %s", root, ", ".join(made[:6])
                     + (f" and {len(made) - 6} more" if len(made) > 6 else ""))  # fmt: skip
    tls = ServerTls.of_pki(root)
    return tls if access.revocation == "crl" else replace(tls, crl=None)


@dataclass(frozen=True)
class FrontDoorAccess:
    tls: ServerTls
    interceptor: AccessInterceptor
    gate: Gate
    revocations: Revocations
    streams: OpenStreams

    async def watch_revocations(self) -> None:
        """Until cancelled: each new revocation ends the revoked certificates' streams
        (and so releases what they hold) within a second."""

        def end_streams(serials: frozenset[int]) -> None:
            ended = self.streams.end(
                serials, grpc.StatusCode.UNAUTHENTICATED, "the certificate has been revoked"
            )
            if ended:
                log.warning("revocation ended %d open streams", ended)

        await self.revocations.watch(end_streams)


def front_door_access(config: Config, tls: ServerTls) -> FrontDoorAccess:
    """RevocationError when the revocation list the config asks for cannot be taken."""
    access = config.access
    gate = Gate(access.limits)
    revocations = Revocations(tls.crl, tls.client_ca)
    streams = OpenStreams()
    interceptor = AccessInterceptor(
        directory(config),
        Identities(tls.client_ca, access.trust_domain),
        revocations,
        gate,
        Scope(dict(access.subscribers), point_offices(config)),
        streams,
    )
    return FrontDoorAccess(tls, interceptor, gate, revocations, streams)

"""The front door's side of access, from the config: its TLS files (a development PKI
made on first start unless the config names certificates made elsewhere), the
principals, the revocation list and the limits."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from orchestrator.access import pki
from orchestrator.access.interceptor import AccessInterceptor
from orchestrator.access.limits import Gate
from orchestrator.access.policy import Scope
from orchestrator.access.revocation import Revocations
from orchestrator.access.tls import ServerTls
from orchestrator.config import Config
from orchestrator.domain.principals import AccessSettings, Directory

log = logging.getLogger(__name__)


def pki_dir(access: AccessSettings, data_dir: Path) -> Path:
    return (data_dir / access.pki_dir).resolve()


def directory(config: Config) -> Directory:
    deployment = config.deployment
    return Directory(config.access, deployment.terminal_window, deployment.window_service_point)


def server_tls(config: Config, data_dir: Path, *, create: bool) -> ServerTls:
    """The files the front door serves with; the dev PKI is made first when allowed."""
    access = config.access
    if access.provisioned:
        return ServerTls(
            Path(access.ca_file),
            Path(access.server_cert_file),
            Path(access.server_key_file),
            Path(access.crl_file) if access.crl_file else None,
        )
    root = pki_dir(access, data_dir)
    if create:
        made = pki.init(root, directory(config).names())
        if made:
            log.info("development PKI in %s: made %s", root, ", ".join(made[:6])
                     + (f" and {len(made) - 6} more" if len(made) > 6 else ""))  # fmt: skip
    return ServerTls.of_pki(root)


@dataclass(frozen=True)
class FrontDoorAccess:
    tls: ServerTls
    interceptor: AccessInterceptor
    gate: Gate


def front_door_access(config: Config, tls: ServerTls) -> FrontDoorAccess:
    access = config.access
    gate = Gate(access.limits)
    interceptor = AccessInterceptor(
        directory(config),
        Revocations(tls.crl, tls.ca),
        gate,
        Scope(frozenset(access.subscribers)),
    )
    return FrontDoorAccess(tls, interceptor, gate)

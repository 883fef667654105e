"""Principals (a certificate's common name) and their roles, as the config names them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    TERMINAL = "terminal"
    BUSINESS = "business"
    BACKOFFICE = "backoffice"
    AUDITOR = "auditor"
    MONITOR = "monitor"


DEFAULT_PRINCIPALS: Mapping[str, Role] = {
    "business": Role.BUSINESS,
    "backoffice": Role.BACKOFFICE,
    "auditor": Role.AUDITOR,
    "monitor": Role.MONITOR,
}


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    window: str = ""  # terminals: the window they are bound to
    service_point: str = ""  # terminals: their window's service point
    office: str = ""  # a backoffice or auditor principal of one city office ("": all)


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = 64 * 1024
    terminal_calls: int = 16  # calls in flight per terminal
    other_calls: int = 512  # calls in flight per other principal (business, backoffice...)
    terminal_rate: float = 20.0  # calls per second per terminal, sustained
    terminal_burst: int = 50
    business_rate: float = 1000.0  # calls per second per business principal, sustained
    business_burst: int = 2000
    other_rate: float = 20.0  # per backoffice, auditor or monitor principal
    other_burst: int = 100
    settlement_calls: int = 2  # GetSettlement calls in flight per principal
    streams: int = 4  # WatchWindow / WatchPayments streams open per principal
    stream_queue: int = 64  # events waiting for a slow reader before it is dropped
    stream_stall_s: float = 30.0  # a reader that takes no message this long is dropped
    ack_ids: int = 1000  # event ids per AckPayments
    max_cash_fen: int = 10_000_000  # cash_received_fen above this is refused


@dataclass(frozen=True)
class Pins:
    attempts: int = 5  # wrong PINs within `window_s` lock the supervisor...
    window_s: int = 900
    lockout_s: int = 900  # ...for this long
    # PIN attempts one terminal may make within `window_s`, whichever supervisor they
    # name: fewer than `attempts`, so that one terminal alone cannot lock a supervisor.
    terminal_attempts: int = 3


@dataclass(frozen=True)
class AccessSettings:
    """The [access] table: where the certificates are, who is who, and the limits."""

    pki_dir: str = "pki"  # relative to the data directory unless absolute
    ca_file: str = ""  # production: a CA, server certificate and key made elsewhere
    server_cert_file: str = ""
    server_key_file: str = ""
    crl_file: str = ""  # production: the CA's revocation list (PEM), re-read on change
    # "crl": a revocation list is required (the dev PKI's crl.pem, or crl_file);
    # "none": the deployment runs without one, as its config says in so many words.
    revocation: str = "crl"
    # production: the CA that issues the principals' certificates, when ca_file holds
    # another (a root above it); its revocation list is crl_file
    client_ca_file: str = ""
    # the principals' certificates carry spiffe://<trust_domain>/windowpay/<name>
    trust_domain: str = "windowpay"
    principals: Mapping[str, Role] = field(default_factory=lambda: dict(DEFAULT_PRINCIPALS))
    # WatchPayments subscriber id -> the business principal that alone may use it
    subscribers: Mapping[str, str] = field(default_factory=lambda: {"business": "business"})
    supervisors: Mapping[str, str] = field(default_factory=dict)  # supervisor -> service point
    # backoffice or auditor principal -> the one office it reads and settles ([access.offices])
    offices: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    pins: Pins = field(default_factory=Pins)

    @property
    def provisioned(self) -> bool:
        """True when the config names certificates made elsewhere (no dev PKI)."""
        return bool(self.ca_file)


class Directory:
    """Every principal of a deployment: the config's named ones and one per terminal."""

    def __init__(
        self,
        access: AccessSettings,
        terminal_window: Mapping[str, str],
        window_service_point: Mapping[str, str],
    ) -> None:
        table = {
            name: Principal(name, role, office=access.offices.get(name, ""))
            for name, role in access.principals.items()
        }
        for terminal, window in terminal_window.items():
            table[terminal] = Principal(
                terminal, Role.TERMINAL, window, window_service_point[window]
            )
        self._table = table

    def get(self, name: str) -> Principal | None:
        return self._table.get(name)

    def names(self) -> list[str]:
        return sorted(self._table)

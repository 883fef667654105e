"""The CA's revocation list, watched for changes.

A list is taken only once its signature verifies with the CA's public key, whatever the
key's type (RSA, EC, Ed25519, ...), and only when the CA's name is its issuer. The front
door starts only with a good list (or with `revocation = "none"` in the config); after
that a list that is missing, unreadable or not the CA's is refused with an error and a
metric, and the last good one stays in force: revocation never stops silently. Nor can a
list the CA signed lift a revocation while the front door runs: one numbered below the
list in force, or issued before it (a backup put back), is refused as a rollback, and
one that leaves out a serial in force as dropping it. Lifting a revocation takes a
restart on the list the operator chose.

A watcher task looks at the file a few times a second (not each call) and, when a new
list revokes a certificate, tells the front door, which ends that certificate's open
streams."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from orchestrator.access.pki import PkiError
from orchestrator.metrics import CRL_LOADED, CRL_REFUSED

log = logging.getLogger(__name__)
WATCH_S = 0.25  # how often the watcher looks at the file

Stamp = tuple[int, int, int]
OnRevoked = Callable[[frozenset[int]], None]


class RevocationError(PkiError):
    """A revocation list that cannot be taken; `reason` is missing, unreadable or
    foreign (not the CA's)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class RevocationList:
    serials: frozenset[int]
    number: int  # its CRL number; -1 for a list without one
    issued: dt.datetime

    def check_follows(self, before: RevocationList) -> None:
        """RevocationError unless this list may replace `before`."""
        if self.number < before.number or self.issued < before.issued:
            raise RevocationError(
                "rollback",
                f"number {self.number} issued {self.issued:%Y-%m-%d %H:%M:%S}Z is older than "
                f"the list in force (number {before.number} issued "
                f"{before.issued:%Y-%m-%d %H:%M:%S}Z)",
            )
        if dropped := before.serials - self.serials:
            listed = ", ".join(f"{s:x}" for s in sorted(dropped)[:5])
            raise RevocationError("dropped", f"it no longer revokes {listed}")


def read_crl(path: Path, ca: x509.Certificate) -> RevocationList:
    """The list, once it is known to be the CA's; RevocationError saying why it is not."""
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except FileNotFoundError:
        raise RevocationError("missing", "missing") from None
    except (OSError, ValueError) as error:
        raise RevocationError("unreadable", f"unreadable ({error})") from None
    if crl.issuer != ca.subject:
        raise RevocationError("foreign", f"issued by {crl.issuer.rfc4514_string()}, not by the CA")
    try:
        signed = crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except TypeError:  # a CA key that cannot sign (X25519, ...)
        signed = False
    if not signed:
        raise RevocationError("foreign", "not signed by the CA")
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = -1
    return RevocationList(
        frozenset(entry.serial_number for entry in crl), number, crl.last_update_utc
    )


def _stamp(path: Path) -> Stamp:
    try:
        stat = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class Revocations:
    """The serials revoked by the CA's list (`crl` None: revocation = "none")."""

    def __init__(self, crl: Path | None, ca_cert: Path) -> None:
        self._crl = crl
        self._ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        self.serials: frozenset[int] = frozenset()
        self._in_force: RevocationList | None = None
        self._stamp: Stamp | None = None
        if crl is not None:
            self._stamp = _stamp(crl)
            try:
                self._take(read_crl(crl, self._ca))
            except RevocationError as error:
                raise RevocationError(
                    error.reason,
                    f"revocation list {crl}: {error}; the front door does not start "
                    'without one (or set [access] revocation = "none")',
                ) from None

    def revoked(self, serial: int) -> bool:
        return serial in self.serials

    def _take(self, crl: RevocationList) -> frozenset[int]:
        """Put a good list in force; returns the serials it newly revokes."""
        serials = crl.serials
        added = serials - self.serials
        self._in_force = crl
        self.serials = serials
        CRL_LOADED.set(time.time())
        log.info("revocation list %s in force: %d certificates revoked", self._crl, len(serials))
        return added

    async def refresh(self) -> frozenset[int]:
        """Read the list again if its file changed; the serials newly revoked."""
        if self._crl is None:
            return frozenset()
        stamp = _stamp(self._crl)
        if stamp == self._stamp:
            return frozenset()
        self._stamp = stamp
        try:
            crl = await asyncio.to_thread(read_crl, self._crl, self._ca)
            if self._in_force is not None:
                crl.check_follows(self._in_force)
        except RevocationError as error:
            CRL_REFUSED.labels(error.reason).inc()
            log.error("revocation list %s refused: %s; the last good one stays in force",
                      self._crl, error)  # fmt: skip
            return frozenset()
        return self._take(crl)

    async def watch(self, on_revoked: OnRevoked, every_s: float = WATCH_S) -> None:
        """Until cancelled: read each new list, and report what it newly revokes."""
        while True:
            added = await self.refresh()
            if added:
                on_revoked(added)
            await asyncio.sleep(every_s)

"""Revoked certificates, from the CA's revocation list, re-read when the file changes.

Checked on every call, so it is cheap: one stat() and two dictionary look-ups. A list
that does not verify against the CA is refused (the last good one stays in force)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger(__name__)
_CACHE = 4096  # certificates whose serial is remembered


class Revocations:
    def __init__(self, crl: Path | None, ca_cert: Path) -> None:
        self._crl = crl
        self._ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        self._stamp: tuple[int, int, int] | None = None
        self._revoked: frozenset[int] = frozenset()
        self._serials: dict[bytes, int] = {}
        self._refresh()

    def _refresh(self) -> None:
        if self._crl is None:
            return
        try:
            stat = os.stat(self._crl)
        except FileNotFoundError:
            stamp = (0, 0, 0)
            if stamp != self._stamp:
                self._stamp, self._revoked = stamp, frozenset()
            return
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            crl = x509.load_pem_x509_crl(self._crl.read_bytes())
            public = self._ca.public_key()
            if not isinstance(public, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(
                public
            ):
                raise ValueError("not signed by the CA")
        except (OSError, ValueError) as error:
            log.error("revocation list %s refused (%s); keeping the last good one", self._crl,
                      error)  # fmt: skip
            return
        self._revoked = frozenset(entry.serial_number for entry in crl)
        log.info("revocation list loaded: %d certificates revoked", len(self._revoked))

    def serial(self, pem: bytes) -> int:
        serial = self._serials.get(pem)
        if serial is None:
            if len(self._serials) >= _CACHE:
                self._serials.clear()
            serial = x509.load_pem_x509_certificate(pem).serial_number
            self._serials[pem] = serial
        return serial

    def revoked(self, pem: bytes) -> bool:
        self._refresh()
        return bool(self._revoked) and self.serial(pem) in self._revoked

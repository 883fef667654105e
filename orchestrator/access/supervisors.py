"""Supervisors prove who they are with a PIN when they approve a refund.

PINs are kept only as scrypt hashes (hashlib's, a kept password-hashing function) in
`<pki_dir>/supervisor_pins.json` (0600). Development PINs are made on first start into
`<pki_dir>/supervisors.json` ({"SUP01": "<pin>", ...}, 0600);
`windowpay supervisors set-pin SUPnn` sets one for production. A PIN is never logged,
stored in an order, or echoed in an answer."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from redis.exceptions import RedisError

from orchestrator.domain.principals import AccessSettings
from orchestrator.files import create_secret, replace_file
from orchestrator.store.lockout import Admission, PinLockout

log = logging.getLogger(__name__)

DEV_PINS = "supervisors.json"
HASHES = "supervisor_pins.json"
PIN = re.compile(r"[0-9]{6,12}", re.ASCII)
_N, _R, _P = 2**14, 8, 1  # scrypt cost: ~16 MiB and tens of milliseconds per check


def hash_pin(pin: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    encode = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${encode(salt).decode()}${encode(digest).decode()}"


def pin_matches(pin: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            pin.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
            dklen=len(expected),
        )  # fmt: skip
    except ValueError:
        return False
    return kind == "scrypt" and hmac.compare_digest(got, expected)


def check_pin_format(pin: str) -> None:
    if not PIN.fullmatch(pin):
        raise ValueError("a PIN is 6 to 12 digits 0-9")


def _read_hashes(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object of supervisor -> hash")
    return {str(k): str(v) for k, v in data.items()}


def ensure_dev_pins(access: AccessSettings, pki_dir: Path) -> list[str]:
    """On first start: a random PIN per supervisor, the PINs into supervisors.json and
    their hashes into supervisor_pins.json. Never over an existing file."""
    hashes_path = pki_dir / HASHES
    if hashes_path.exists() or (pki_dir / DEV_PINS).exists():
        missing = sorted(set(access.supervisors) - set(_read_hashes(hashes_path)))
        if missing:
            log.warning("supervisors without a PIN (windowpay supervisors set-pin): %s",
                        ", ".join(missing))  # fmt: skip
        return []
    pins = {s: f"{secrets.randbelow(10**6):06d}" for s in sorted(access.supervisors)}
    create_secret(pki_dir / DEV_PINS, json.dumps(pins, indent=2).encode())
    hashes = {s: hash_pin(pin) for s, pin in pins.items()}
    create_secret(hashes_path, json.dumps(hashes, indent=2).encode())
    return sorted(pins)


def set_pin(pki_dir: Path, supervisor_id: str, pin: str) -> None:
    check_pin_format(pin)
    path = pki_dir / HASHES
    hashes = _read_hashes(path)
    hashes[supervisor_id] = hash_pin(pin)
    if path.exists():
        replace_file(path, json.dumps(hashes, indent=2).encode(), mode=0o600)
    else:
        create_secret(path, json.dumps(hashes, indent=2).encode())
    dev = pki_dir / DEV_PINS
    if dev.exists():  # a development PIN written down there is no longer the PIN
        pins = json.loads(dev.read_text())
        if supervisor_id in pins:
            del pins[supervisor_id]
            replace_file(dev, json.dumps(pins, indent=2).encode(), mode=0o600)


class Verdict(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"  # not a supervisor of this deployment, or no PIN set
    ELSEWHERE = "elsewhere"  # a supervisor of another service point
    WRONG = "wrong"
    LOCKED = "locked"  # the supervisor is locked (now, or by this wrong PIN)
    TERMINAL_LIMIT = "terminal_limit"  # the terminal has used its attempts for now
    BUSY = "busy"  # as many attempts as the limit are already wrong or being checked
    UNAVAILABLE = "unavailable"  # the shared count cannot be read: refuse, try again


REFUSAL = "the refund is not approved: supervisor or PIN not accepted"
"""Every refusal of a supervisor says this, whatever the reason: the answer tells a
guessing terminal nothing (the reason is logged and counted by verdict)."""


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    detail: str = ""  # for the log only, never for the caller
    checked: bool = False  # the PIN was compared (an attempt was counted for it)


class Supervisors:
    """Checks a supervisor's PIN for a refund at a service point."""

    def __init__(self, access: AccessSettings, pki_dir: Path, lockout: PinLockout) -> None:
        self._points = dict(access.supervisors)
        self._path = pki_dir / HASHES
        self._lockout = lockout
        self._stamp: tuple[int, int, int] | None = None
        self._hashes: dict[str, str] = {}

    def _current(self) -> dict[str, str]:
        try:
            stat = os.stat(self._path)
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        if stamp != self._stamp:
            try:
                self._hashes = _read_hashes(self._path)
            except (OSError, ValueError) as error:
                log.error("supervisor PIN hashes unreadable (%s); keeping the last ones", error)
            self._stamp = stamp
        return self._hashes

    async def approve(
        self, supervisor_id: str, pin: str, service_point: str, terminal_id: str
    ) -> Decision:
        """Whether `supervisor_id` approves, with `pin`, a refund at `service_point`
        asked by `terminal_id` (a terminal of that point: the caller checked it).

        Who is not a supervisor of this point is refused before anything is counted, so
        a terminal of another point can neither guess nor lock this point's PINs."""
        point = self._points.get(supervisor_id)
        stored = self._current().get(supervisor_id)
        if point is None or stored is None:
            return Decision(Verdict.UNKNOWN, f"{supervisor_id[:20]!r} is not a supervisor here")
        if point != service_point:
            return Decision(
                Verdict.ELSEWHERE, f"{supervisor_id} approves at {point}, not {service_point}"
            )
        try:
            return await self._check(supervisor_id, pin, stored, terminal_id)
        except RedisError:
            return Decision(Verdict.UNAVAILABLE, "the PIN attempts cannot be counted")

    async def _check(self, supervisor_id: str, pin: str, stored: str, terminal_id: str) -> Decision:
        begun = await self._lockout.begin(supervisor_id, terminal_id)
        if begun.admission is Admission.LOCKED:
            return Decision(Verdict.LOCKED, f"locked for {begun.wait_s:.0f} s more")
        if begun.admission is Admission.TERMINAL:
            return Decision(
                Verdict.TERMINAL_LIMIT, f"{terminal_id} may try again in {begun.wait_s:.0f} s"
            )
        if begun.admission is Admission.BUSY:
            return Decision(Verdict.BUSY, f"{supervisor_id}'s attempts are all being checked")
        if await asyncio.to_thread(pin_matches, pin, stored):
            await self._lockout.right(supervisor_id, terminal_id)
            return Decision(Verdict.OK, checked=True)
        if await self._lockout.wrong(supervisor_id):
            return Decision(Verdict.LOCKED, "wrong PIN; the supervisor is now locked", True)
        return Decision(Verdict.WRONG, "wrong PIN", True)

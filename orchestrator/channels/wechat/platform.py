"""The keys WeChat Pay signs its answers with, as windowpay learns them.

Certificate mode: the platform certificates come from `GET /v3/certificates`, each
encrypted with the merchant's APIv3 key (AEAD_AES_256_GCM, the nonce and associated_data
given beside the ciphertext). All certificates within their validity are accepted at
once, so a rotation (a new certificate served beside the old one) breaks nothing. The
set is refreshed when older than `refresh_s`, and once more whenever an answer names a
serial it does not know; a serial still unknown after that is no answer at all.

Downloads are at most one a minute (REFRESH_COOLDOWN_S), whatever asks for them: the
listener looks a notification's key up before its signature can be checked, so without
this bound any one-line POST naming a new serial would make windowpay call WeChat Pay.
A serial met during the cooldown is unknown (the notification is refused, WeChat Pay sends
it again; an answer is an unknown outcome, asked again by the engine).

Public-key mode: the answer's Wechatpay-Serial is the configured `PUB_KEY_ID_...` and
the configured WeChat Pay public key verifies it; every request names that key (its
Wechatpay-Serial header, adapter.py), which is what WeChat signs an answer with while it
moves a merchant over. Both modes may be used at once (WeChat lets a merchant switch over
gradually).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator.providers.certificates import (
    Certificate,
    CertificateError,
    load_pem_certificate,
    rsa_public_key,
    serial_hex,
    within_validity,
)
from orchestrator.providers.http import HttpAnswer
from orchestrator.providers.signing import PrivateKey, PublicKey

log = logging.getLogger(__name__)

ALGORITHM = "AEAD_AES_256_GCM"
PUBLIC_KEY_PREFIX = "PUB_KEY_ID_"
REFRESH_COOLDOWN_S = 60.0


@dataclass(frozen=True)
class WeChatMerchant:
    """What windowpay signs requests with: the merchant API key and its certificate's
    serial (the Authorization header's serial_no)."""

    private: PrivateKey
    own_serial: str


@dataclass(frozen=True)
class WeChatTrust:
    apiv3_key: bytes
    public_key_id: str = ""
    public_key: PublicKey | None = None
    refresh_s: float = 12 * 3600.0

    def __post_init__(self) -> None:
        if len(self.apiv3_key) != 32:
            raise ValueError("the APIv3 key must be 32 bytes (32 ASCII characters)")
        if self.public_key_id and not self.public_key_id.startswith(PUBLIC_KEY_PREFIX):
            raise ValueError(f"a WeChat Pay public key id starts with {PUBLIC_KEY_PREFIX}")
        if bool(self.public_key_id) != (self.public_key is not None):
            raise ValueError("public_key_id and the public key go together")


def decrypt_resource(apiv3_key: bytes, resource: Mapping[str, Any]) -> bytes:
    """Open one `encrypt_certificate` (or notification `resource`) object."""
    if resource.get("algorithm") != ALGORITHM:
        raise CertificateError(f"unexpected algorithm {resource.get('algorithm')!r}")
    try:
        ciphertext = base64.b64decode(str(resource["ciphertext"]), validate=True)
        nonce = str(resource["nonce"]).encode()
        associated = str(resource.get("associated_data", "")).encode()
        return AESGCM(apiv3_key).decrypt(nonce, ciphertext, associated)
    except (KeyError, binascii.Error, InvalidTag, ValueError):
        raise CertificateError("platform certificate does not decrypt with the APIv3 key") from None


def encrypt_resource(
    apiv3_key: bytes, plaintext: bytes, nonce: str, associated: str
) -> dict[str, str]:
    """The inverse of decrypt_resource (what the gateway, here the sandbox, sends)."""
    sealed = AESGCM(apiv3_key).encrypt(nonce.encode(), plaintext, associated.encode())
    return {
        "algorithm": ALGORITHM,
        "nonce": nonce,
        "associated_data": associated,
        "ciphertext": base64.b64encode(sealed).decode(),
    }


def certificates_of(apiv3_key: bytes, body: bytes, now: dt.datetime) -> dict[str, Certificate]:
    """The certificates of a /v3/certificates answer that are valid at `now`, by serial."""
    try:
        entries = orjson.loads(body)["data"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise CertificateError("certificates answer has no data list") from None
    found: dict[str, Certificate] = {}
    for entry in entries:
        certificate = load_pem_certificate(
            decrypt_resource(apiv3_key, entry["encrypt_certificate"])
        )
        serial = serial_hex(certificate)
        if serial != str(entry.get("serial_no", "")).upper():
            raise CertificateError(f"certificate {serial} is listed as {entry.get('serial_no')}")
        if within_validity(certificate, now):
            found[serial] = certificate
    return found


Download = Callable[[], Awaitable[HttpAnswer]]
SignedBy = Callable[[HttpAnswer, Mapping[str, PublicKey]], bool]


class PlatformKeys:
    """The answer-verifying keys of one merchant, refreshed from the gateway."""

    def __init__(
        self,
        trust: WeChatTrust,
        download: Download,
        signed_by: SignedBy,
        clock: Callable[[], float],
        cooldown_s: float = REFRESH_COOLDOWN_S,
    ) -> None:
        self._trust = trust
        self._download = download
        self._signed_by = signed_by
        self._clock = clock
        self._cooldown_s = cooldown_s
        self._keys: dict[str, PublicKey] = {}
        self._fetched_at: float | None = None
        self._tried_at: float | None = None  # the last download, whatever came of it
        self._generation = 0
        self._lock = asyncio.Lock()

    @property
    def serials(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def key_for(self, serial: str) -> PublicKey | None:
        """The key that verifies answers signed under `serial`, or None if it is unknown
        even after one refresh."""
        if self._trust.public_key_id and serial == self._trust.public_key_id:
            return self._trust.public_key
        if not serial or serial.startswith(PUBLIC_KEY_PREFIX):
            return None
        seen = self._generation
        if self._stale():
            await self._refresh(seen)
            seen = self._generation
        key = self._keys.get(serial)
        if key is None:
            await self._refresh(seen)
            key = self._keys.get(serial)
        return key

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._trust.refresh_s

    async def _refresh(self, seen: int) -> None:
        async with self._lock:
            if self._generation != seen:
                return  # another caller refreshed while this one waited
            now = self._clock()
            if self._tried_at is not None and now - self._tried_at < self._cooldown_s:
                return  # at most one download a minute; the serial stays unknown
            self._tried_at = now
            try:
                answer = await self._download()
                keys = self._verified(answer)
            except Exception as error:  # the old set stays in use; the caller decides
                log.warning("WeChat Pay platform certificates not refreshed: %s", error)
                return
            self._keys = keys
            self._fetched_at = self._clock()
            self._generation += 1
            log.info("WeChat Pay platform certificates: %s", ", ".join(sorted(keys)) or "none")

    def _verified(self, answer: HttpAnswer) -> dict[str, PublicKey]:
        if answer.status != 200:
            raise CertificateError(f"/v3/certificates answered HTTP {answer.status}")
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        certificates = certificates_of(self._trust.apiv3_key, answer.body, now)
        keys = {serial: rsa_public_key(c) for serial, c in certificates.items()}
        trusted = dict(keys)
        if self._trust.public_key_id and self._trust.public_key is not None:
            trusted[self._trust.public_key_id] = self._trust.public_key
        if not self._signed_by(answer, trusted):
            raise CertificateError("/v3/certificates answer is not signed by a listed key")
        return keys

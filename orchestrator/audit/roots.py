"""Signed daily roots: each service point's day closed with the last hash of its journal
chain, its number of entries, and its payments and refunds (count and sum), signed with
the audit key (Ed25519).

The private key is `<keys>/audit/audit.key` (0600), made on first start like the other
development keys; verifying needs only `audit.pub`. The database holds copies of the
signed statements (table audit_roots), never the key: whoever can write to the database
cannot make a root that verifies. Each day's roots are also exported to
`<data-dir>/audit/roots-YYYY-MM-DD.json`, a file to keep out of the database's reach.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from psycopg import AsyncConnection

from orchestrator.files import create_new_file
from orchestrator.providers.keys import make_group


class AuditKeyError(Exception):
    """The audit key (or its public half) cannot be read."""


def private_key_path(keys_dir: Path) -> Path:
    return keys_dir / "audit" / "audit.key"


def public_key_path(keys_dir: Path) -> Path:
    return keys_dir / "audit" / "audit.pub"


def ensure_audit_key(keys_dir: Path) -> bool:
    """Make the audit key pair once (a development deployment's first start); True if
    made now. Production puts its own key there (or, later, an HSM's)."""
    private, public = private_key_path(keys_dir), public_key_path(keys_dir)

    def make() -> dict[Path, tuple[bytes, bool]]:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        pub = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {private: (pem, True), public: (pub, False)}

    return make_group([private, public], make)


def load_private_key(keys_dir: Path) -> Ed25519PrivateKey:
    path = private_key_path(keys_dir)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as error:
        raise AuditKeyError(f"cannot read the audit key {path}: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise AuditKeyError(f"cannot read the audit public key {path}: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError(f"{path} is not an Ed25519 public key")
    return key


def fingerprint(public: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, 64 hex digits: what a deployment pins
    ([record] audit_public_key_sha256) and `audit verify` prints."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def key_id(public: Ed25519PublicKey) -> str:
    return fingerprint(public)[:16]


def check_pinned(public: Ed25519PublicKey, pinned: str) -> None:
    """AuditKeyError unless the key is the pinned one (no pin: any key)."""
    if pinned and fingerprint(public) != pinned:
        raise AuditKeyError(
            f"the audit key's SHA-256 is {fingerprint(public)}; the deployment pins "
            f"{pinned}: the key file was replaced"
        )


@dataclass(frozen=True, slots=True)
class Totals:
    """What a day's chain holds: entries, its last hash, payments and refunds made."""

    entries: int
    root: str
    payments: int = 0
    payments_fen: int = 0
    refunds: int = 0
    refunds_fen: int = 0


@dataclass(frozen=True, slots=True)
class SignedRoot:
    """One service point's day as signed: `statement` is the exact bytes signed."""

    statement: str
    signature: str  # base64

    @property
    def fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = orjson.loads(self.statement)
        return fields

    @property
    def service_point(self) -> str:
        return str(self.fields["service_point"])

    def totals(self) -> Totals:
        f = self.fields
        return Totals(
            f["entries"], f["root"], f["payments"], f["payments_fen"], f["refunds"],
            f["refunds_fen"],
        )  # fmt: skip

    def verifies(self, public: Ed25519PublicKey) -> bool:
        try:
            public.verify(base64.b64decode(self.signature), self.statement.encode())
        except (InvalidSignature, ValueError):
            return False
        return True


def sign(
    key: Ed25519PrivateKey, day: date, sp: str, totals: Totals, closed_at_ms: int
) -> SignedRoot:
    statement = orjson.dumps(
        {
            "day": day.isoformat(),
            "service_point": sp,
            "entries": totals.entries,
            "root": totals.root,
            "payments": totals.payments,
            "payments_fen": totals.payments_fen,
            "refunds": totals.refunds,
            "refunds_fen": totals.refunds_fen,
            "closed_at": closed_at_ms,
            "key": key_id(key.public_key()),
        },
        option=orjson.OPT_SORT_KEYS,
    ).decode()
    signature = base64.b64encode(key.sign(statement.encode())).decode()
    return SignedRoot(statement, signature)


# ---- the file per day ---------------------------------------------------------------------


def roots_file(audit_dir: Path, day: date) -> Path:
    return audit_dir / f"roots-{day.isoformat()}.json"


def write_file(audit_dir: Path, day: date, roots: list[SignedRoot]) -> Path:
    """Export the day's roots; FileExistsError if the day's file exists (roots are
    written once: a closed day is never signed over)."""
    path = roots_file(audit_dir, day)
    body = {
        "day": day.isoformat(),
        "roots": [{"statement": r.statement, "signature": r.signature} for r in roots],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    create_new_file(path, orjson.dumps(body, option=orjson.OPT_INDENT_2), mode=0o644)
    return path


def read_file(audit_dir: Path, day: date) -> list[SignedRoot] | None:
    """The day's signed roots as exported, None without a file."""
    path = roots_file(audit_dir, day)
    try:
        body = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    return [SignedRoot(str(r["statement"]), str(r["signature"])) for r in body["roots"]]


# ---- the copy in the record -----------------------------------------------------------------

_INSERT = """
INSERT INTO audit_roots (day, service_point_id, entries, root_hash, payments, payments_fen,
    refunds, refunds_fen, statement, signature, key_id, closed_at_ms)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""  # no ON CONFLICT: a root is stored once, never replaced


async def store_roots(conn: AsyncConnection[Any], day: date, roots: list[SignedRoot]) -> None:
    async with conn.transaction(), conn.cursor() as cur:
        for root in roots:
            f, t = root.fields, root.totals()
            await cur.execute(
                _INSERT,
                (
                    day, root.service_point, t.entries, t.root, t.payments, t.payments_fen,
                    t.refunds, t.refunds_fen, root.statement, root.signature, f["key"],
                    f["closed_at"],
                ),
            )  # fmt: skip


async def stored_roots(conn: AsyncConnection[Any], day: date) -> list[SignedRoot]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT statement, signature FROM audit_roots WHERE day = %s ORDER BY service_point_id",
            (day,),
        )
        return [SignedRoot(s, sig) for s, sig in await cur.fetchall()]

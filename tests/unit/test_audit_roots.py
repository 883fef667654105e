"""The audit key and the signed roots: the key made once (private 0600), a root that
verifies with the public half, and one that does not once any field changed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson

from orchestrator.audit.roots import (
    SignedRoot,
    Totals,
    ensure_audit_key,
    load_private_key,
    load_public_key,
    private_key_path,
    public_key_path,
    read_file,
    sign,
    write_file,
)

DAY = date(2026, 12, 1)


def test_the_audit_key_is_made_once_private_with_its_public_half(tmp_path: Path) -> None:
    assert ensure_audit_key(tmp_path)
    private, public = private_key_path(tmp_path), public_key_path(tmp_path)
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    assert oct(public.stat().st_mode & 0o777) == "0o644"
    before = private.read_bytes()
    assert not ensure_audit_key(tmp_path)
    assert private.read_bytes() == before


def test_a_signed_root_verifies_and_an_altered_one_does_not(tmp_path: Path) -> None:
    ensure_audit_key(tmp_path)
    key, public = load_private_key(tmp_path), load_public_key(public_key_path(tmp_path))
    root = sign(key, DAY, "SP01", Totals(40, "ab" * 32, 12, 132000, 1, 500), 1)
    assert root.verifies(public)
    assert root.totals() == Totals(40, "ab" * 32, 12, 132000, 1, 500)
    fields = orjson.loads(root.statement)
    fields["refunds_fen"] = 0
    altered = SignedRoot(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode(), root.signature)
    assert not altered.verifies(public)
    assert not SignedRoot(root.statement, "not base64!").verifies(public)
    write_file(tmp_path / "audit", DAY, [root])
    assert read_file(tmp_path / "audit", DAY) == [root]
    assert read_file(tmp_path / "audit", date(2026, 12, 2)) is None

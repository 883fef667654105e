"""Checks of caller-supplied identifiers and text, shared by every entry point."""

from __future__ import annotations

import re

from orchestrator.domain.errors import InvalidArgument

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def check_id(value: str, what: str) -> str:
    if not value:
        raise InvalidArgument(f"{what} is required")
    if not _ID.match(value):
        raise InvalidArgument(
            f"{what} {value[:80]!r} must be 1-64 letters, digits or . _ : - "
            "(starting with a letter or digit)"
        )
    return value


def check_text(value: str, what: str, *, required: bool, limit: int) -> str:
    if required and not value.strip():
        raise InvalidArgument(f"{what} is required")
    if len(value) > limit:
        raise InvalidArgument(f"{what} is longer than {limit} characters")
    if any(ord(ch) < 32 for ch in value):
        raise InvalidArgument(f"{what} contains control characters")
    return value

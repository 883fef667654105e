"""Checks of caller-supplied identifiers and text, shared by every entry point."""

from __future__ import annotations

import re
import unicodedata

from orchestrator.domain.errors import InvalidArgument

# Full match, ASCII only: "B1\n" is not "B1", and no other script's digits pass.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", re.ASCII)
# Control, format (bidi overrides, zero-width), private-use, unassigned, line/paragraph
# separators: nothing a name or a reason needs, and each can disguise one as another.
_REFUSED = frozenset({"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"})


def check_id(value: str, what: str) -> str:
    if not value:
        raise InvalidArgument(f"{what} is required")
    if not _ID.fullmatch(value):
        raise InvalidArgument(
            f"{what} {value[:80]!r} must be 1-64 letters, digits or . _ : - "
            "(starting with a letter or digit)"
        )
    return value


# A request id as the actor sees it: the front door puts the caller's principal (no
# colon in it) before the id the caller sent, so that each principal's ids are its own.
_SCOPED_REQUEST_ID = re.compile(
    r"(?:[A-Za-z0-9][A-Za-z0-9._-]{0,63}:)?[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", re.ASCII
)


def scoped_request_id(principal: str, request_id: str) -> str:
    return f"{principal}:{request_id}"


def check_request_id(value: str) -> str:
    if not value:
        raise InvalidArgument("request_id is required")
    if not _SCOPED_REQUEST_ID.fullmatch(value):
        raise InvalidArgument(
            f"request_id {value[:80]!r} must be 1-64 letters, digits or . _ : - "
            "(starting with a letter or digit)"
        )
    return value


def check_text(value: str, what: str, *, required: bool, limit: int) -> str:
    if required and not value.strip():
        raise InvalidArgument(f"{what} is required")
    if len(value) > limit:
        raise InvalidArgument(f"{what} is longer than {limit} characters")
    if any(unicodedata.category(ch) in _REFUSED for ch in value):
        raise InvalidArgument(f"{what} contains control, format or bidi characters")
    return value


def check_pattern(value: str, pattern: re.Pattern[str], what: str, rule: str) -> str:
    if not pattern.fullmatch(value):
        raise InvalidArgument(f"{what} {value[:40]!r} must be {rule}")
    return value


DIGITS_8 = re.compile(r"[0-9]{8}", re.ASCII)
DIGITS_10 = re.compile(r"[0-9]{10}", re.ASCII)
CHECK_CODE = re.compile(r"[A-Za-z0-9]{6}", re.ASCII)
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
TRADE_NO = re.compile(r"[A-Za-z0-9._:-]{1,64}", re.ASCII)

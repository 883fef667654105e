"""Payer auth codes (the one-time payment code shown to the POS): the shape of a channel's
rule, and what may be kept of a code. Each channel states its rule in
orchestrator/channels/<name>/auth_codes.py."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from orchestrator.domain.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class AuthCodeRule:
    pattern: re.Pattern[str]
    description: str  # for the error message: "18 digits starting 10 to 15"
    # A well-formed code the sandbox accepts: this prefix, padded to this length.
    sample_prefix: str
    sample_length: int

    def check(self, channel: str, code: str) -> None:
        # Full match of ASCII digits: Arabic-Indic or full-width digits would be other
        # codes to the single-use rule, and a trailing newline must not pass.
        if not self.pattern.fullmatch(code):
            raise InvalidArgument(f"{channel} auth code must be {self.description}")


def check_no_auth_code(code: str) -> None:
    """A channel without a payer code (cash) takes none."""
    if code:
        raise InvalidArgument("a cash payment takes no auth code")


def mask_auth_code(code: str) -> str:
    """What may be stored and shown: the first and last four digits."""
    if len(code) <= 8:
        return "*" * len(code)
    return f"{code[:4]}{'*' * (len(code) - 8)}{code[-4:]}"


def auth_code_digest(code: str) -> str:
    """A stable key for the single-use check that does not store the code itself."""
    return hashlib.sha256(code.encode()).hexdigest()[:32]

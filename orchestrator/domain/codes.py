"""Payer auth codes (the one-time payment code shown to the POS), per channel."""

from __future__ import annotations

import hashlib
import re

from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.states import Channel

_RULES: dict[Channel, tuple[re.Pattern[str], str]] = {
    # ASCII digits, full match: Arabic-Indic or full-width digits are other codes to the
    # single-use rule, and a trailing newline must not pass.
    Channel.WECHAT: (re.compile(r"1[0-5][0-9]{16}"), "18 digits starting 10 to 15"),
    Channel.ALIPAY: (re.compile(r"(2[5-9]|30)[0-9]{14,22}"), "16 to 24 digits starting 25 to 30"),
    Channel.UNIONPAY: (re.compile(r"62[0-9]{14,17}"), "16 to 19 digits starting 62"),
}


def check_auth_code(channel: Channel, code: str) -> None:
    if channel is Channel.CASH:
        if code:
            raise InvalidArgument("a cash payment takes no auth code")
        return
    pattern, rule = _RULES[channel]
    if not pattern.fullmatch(code):
        raise InvalidArgument(f"{channel} auth code must be {rule}")


def mask_auth_code(code: str) -> str:
    """What may be stored and shown: the first and last four digits."""
    if len(code) <= 8:
        return "*" * len(code)
    return f"{code[:4]}{'*' * (len(code) - 8)}{code[-4:]}"


def auth_code_digest(code: str) -> str:
    """A stable key for the single-use check that does not store the code itself."""
    return hashlib.sha256(code.encode()).hexdigest()[:32]

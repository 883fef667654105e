"""Alipay's payer auth code. Pure: importable without the adapter's HTTP code."""

from __future__ import annotations

import re

from orchestrator.domain.auth_codes import AuthCodeRule

AUTH_CODE = AuthCodeRule(
    pattern=re.compile(r"(2[5-9]|30)[0-9]{14,22}", re.ASCII),
    description="16 to 24 digits starting 25 to 30",
    sample_prefix="28",
    sample_length=18,
)

"""UnionPay's payer auth code. Pure: importable without the adapter's HTTP code."""

from __future__ import annotations

import re

from orchestrator.domain.auth_codes import AuthCodeRule

AUTH_CODE = AuthCodeRule(
    pattern=re.compile(r"62[0-9]{14,17}", re.ASCII),
    description="16 to 19 digits starting 62",
    sample_prefix="62",
    sample_length=19,
)

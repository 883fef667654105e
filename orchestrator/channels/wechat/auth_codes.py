"""WeChat Pay's payer auth code. Pure: importable without the adapter's HTTP code."""

from __future__ import annotations

import re

from orchestrator.domain.auth_codes import AuthCodeRule

AUTH_CODE = AuthCodeRule(
    pattern=re.compile(r"1[0-5][0-9]{16}", re.ASCII),
    description="18 digits starting 10 to 15",
    sample_prefix="13",
    sample_length=18,
)

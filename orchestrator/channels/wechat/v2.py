"""WeChat Pay API v2's signature (MD5): no code path signs with it (windowpay speaks APIv3
only); kept because its published test vector pins down the parameter canonicalisation
the other channels share (providers/signing.py, sorted_pairs)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from orchestrator.providers.signing import sorted_pairs


def v2_md5(params: Mapping[str, str], api_key: str) -> str:
    text = f"{sorted_pairs(params, exclude=frozenset({'sign'}))}&key={api_key}"
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()

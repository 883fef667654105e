"""The payer's phone, for the sandboxes: scans a QR code a sandbox gateway made and
pays it (or not) as the chosen behaviour says (`windowpay pos scan`, the tests)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp

from orchestrator.sandbox.common import QR_PATH, PayerBehaviour

SCAN_PATH = "/_sandbox/payer-app/scan"


class ScanRefused(Exception):
    """The sandbox would not scan the code (unknown, or no longer payable)."""


def payer_app_url(code_url: str) -> str:
    """The payer-app endpoint of the sandbox that made `code_url`."""
    parts = urlsplit(code_url)
    if parts.scheme not in ("http", "https") or QR_PATH not in parts.path:
        raise ValueError(f"{code_url!r} is not a sandbox QR code URL")
    return f"{parts.scheme}://{parts.netloc}{SCAN_PATH}"


async def scan(
    code_url: str,
    behaviour: PayerBehaviour = PayerBehaviour.PAY,
    *,
    delay_s: float = 5.0,
    notify: bool = True,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Scan the code with `behaviour`; the sandbox ledger's trade as it stands after it."""
    body = {
        "code_url": code_url,
        "behaviour": behaviour.value,
        "delay_s": delay_s,
        "notify": notify,
    }
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(payer_app_url(code_url), json=body) as answer,
    ):
        payload: dict[str, Any] = await answer.json(content_type=None)
        if answer.status != 200:
            raise ScanRefused(f"HTTP {answer.status}: {payload.get('error', payload)}")
        return payload

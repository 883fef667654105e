"""What the registry knows of a channel: everything the rest of windowpay asks of it."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from orchestrator.config import ProviderSettings
from orchestrator.domain.auth_codes import AuthCodeRule
from orchestrator.domain.states import Channel
from orchestrator.providers.bills import BillRow
from orchestrator.providers.http import HttpClient
from orchestrator.providers.notices import NoticeVerifier
from orchestrator.providers.port import PaymentProvider
from orchestrator.sandbox.bank import SandboxBank, Trade
from orchestrator.sandbox.common import Gateway


@dataclass(frozen=True)
class ChannelSpec:
    channel: Channel
    display_name: str  # printed on receipts
    auth_code: AuthCodeRule
    declined: Collection[str]  # the pay call's final declines (nothing taken)
    refund_declined: Collection[str]  # a refund's final refusals (nothing refunded)
    parse_bill: Callable[[bytes], list[BillRow]]
    adapter: Callable[[HttpClient, ProviderSettings, Path], PaymentProvider]
    gateway: Callable[[SandboxBank, ProviderSettings, Path], Gateway[Any]]
    ledger_bill: Callable[[list[Trade], date], bytes]  # an in-process sandbox ledger's bill
    make_dev_keys: Callable[[Path], None]  # the sandbox's key material, never over a file
    # the verifier of the provider's notifications (client, settings, keys, max skew s)
    notifications: Callable[[HttpClient, ProviderSettings, Path, float], NoticeVerifier]
    english_name: str = ""  # the console's English name ("": the display name)
    # The provider's bill of day D holds what happened on the local day of (moment +
    # shift): UnionPay's settlement day (清算日) ends at 23:00 Beijing time, so +1 h.
    bill_day_shift: Callable[[ProviderSettings], timedelta] = lambda _: timedelta(0)

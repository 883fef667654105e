"""The one place a channel is found: Channel -> ChannelSpec. The engine's adapters, the
sandbox host's gateways, reconciliation's bill parsers and the auth-code rules are all
looked up here (docs/PROVIDERS.md, "Adding a channel")."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from orchestrator.channels.alipay import bill as alipay_bill
from orchestrator.channels.alipay import declines as alipay_declines
from orchestrator.channels.alipay import sandbox_bill as alipay_sandbox_bill
from orchestrator.channels.alipay import wiring as alipay
from orchestrator.channels.codes import AUTH_CODES
from orchestrator.channels.unionpay import bill as unionpay_bill
from orchestrator.channels.unionpay import declines as unionpay_declines
from orchestrator.channels.unionpay import sandbox_bill as unionpay_sandbox_bill
from orchestrator.channels.unionpay import wiring as unionpay
from orchestrator.channels.wechat import bill as wechat_bill
from orchestrator.channels.wechat import declines as wechat_declines
from orchestrator.channels.wechat import sandbox_bill as wechat_sandbox_bill
from orchestrator.channels.wechat import wiring as wechat
from orchestrator.config import ProviderSettings
from orchestrator.domain.codes import AuthCodeRule
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
    auth_code: AuthCodeRule
    declined: Collection[str]  # the pay call's final declines (nothing taken)
    refund_declined: Collection[str]  # a refund's final refusals (nothing refunded)
    parse_bill: Callable[[bytes], list[BillRow]]
    adapter: Callable[[HttpClient, ProviderSettings, Path], PaymentProvider]
    gateway: Callable[[SandboxBank, ProviderSettings, Path], Gateway[Any]]
    ledger_bill: Callable[[list[Trade], date], bytes]  # an in-process sandbox ledger's bill
    # the verifier of the provider's notifications (client, settings, keys, max skew s)
    notifications: Callable[[HttpClient, ProviderSettings, Path, float], NoticeVerifier]


CHANNELS: dict[Channel, ChannelSpec] = {
    Channel.WECHAT: ChannelSpec(
        Channel.WECHAT,
        AUTH_CODES[Channel.WECHAT],
        wechat_declines.DECLINED,
        wechat_declines.REFUND_DECLINED,
        wechat_bill.parse_wechat,
        wechat.adapter,
        wechat.gateway,
        wechat_sandbox_bill.ledger_bill,
        wechat.notifications,
    ),
    Channel.ALIPAY: ChannelSpec(
        Channel.ALIPAY,
        AUTH_CODES[Channel.ALIPAY],
        alipay_declines.DECLINED,
        alipay_declines.REFUND_DECLINED,
        alipay_bill.parse_alipay,
        alipay.adapter,
        alipay.gateway,
        alipay_sandbox_bill.ledger_bill,
        alipay.notifications,
    ),
    Channel.UNIONPAY: ChannelSpec(
        Channel.UNIONPAY,
        AUTH_CODES[Channel.UNIONPAY],
        unionpay_declines.DECLINED,
        unionpay_declines.REFUND_DECLINED,
        unionpay_bill.parse_unionpay,
        unionpay.adapter,
        unionpay.gateway,
        unionpay_sandbox_bill.ledger_bill,
        unionpay.notifications,
    ),
}


def spec(channel: Channel) -> ChannelSpec:
    """The channel's spec; a channel without a provider (cash) has none."""
    try:
        return CHANNELS[channel]
    except KeyError:
        raise KeyError(f"{channel} has no provider channel package") from None

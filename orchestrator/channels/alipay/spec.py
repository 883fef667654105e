"""Alipay as the registry finds it: every part of the channel, from this package."""

from __future__ import annotations

from orchestrator.channels.alipay import bill, declines, files, sandbox_bill, wiring
from orchestrator.channels.alipay.auth_codes import AUTH_CODE
from orchestrator.channels.spec import ChannelSpec
from orchestrator.domain.states import Channel

SPEC = ChannelSpec(
    channel=Channel.ALIPAY,
    display_name="支付宝",
    english_name="Alipay",
    auth_code=AUTH_CODE,
    declined=declines.DECLINED,
    refund_declined=declines.REFUND_DECLINED,
    parse_bill=bill.parse_alipay,
    adapter=wiring.adapter,
    gateway=wiring.gateway,
    ledger_bill=sandbox_bill.ledger_bill,
    make_dev_keys=files.make_dev_keys,
    notifications=wiring.notifications,
)

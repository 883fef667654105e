"""WeChat Pay as the registry finds it: every part of the channel, from this package."""

from __future__ import annotations

from orchestrator.channels.spec import ChannelSpec
from orchestrator.channels.wechat import bill, declines, files, sandbox_bill, wiring
from orchestrator.channels.wechat.auth_codes import AUTH_CODE
from orchestrator.domain.states import Channel

SPEC = ChannelSpec(
    channel=Channel.WECHAT,
    display_name="微信支付",
    english_name="WeChat Pay",
    auth_code=AUTH_CODE,
    declined=declines.DECLINED,
    refund_declined=declines.REFUND_DECLINED,
    parse_bill=bill.parse_wechat,
    adapter=wiring.adapter,
    gateway=wiring.gateway,
    ledger_bill=sandbox_bill.ledger_bill,
    make_dev_keys=files.make_dev_keys,
    notifications=wiring.notifications,
)

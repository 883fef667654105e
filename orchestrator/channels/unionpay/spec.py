"""UnionPay as the registry finds it: every part of the channel, from this package."""

from __future__ import annotations

from orchestrator.channels.spec import ChannelSpec
from orchestrator.channels.unionpay import bill, declines, files, sandbox_bill, wiring
from orchestrator.channels.unionpay.auth_codes import AUTH_CODE
from orchestrator.domain.states import Channel

SPEC = ChannelSpec(
    channel=Channel.UNIONPAY,
    display_name="银联",
    english_name="UnionPay",
    bill_day_shift=wiring.bill_day_shift,
    auth_code=AUTH_CODE,
    declined=declines.DECLINED,
    refund_declined=declines.REFUND_DECLINED,
    parse_bill=bill.parse_unionpay,
    adapter=wiring.adapter,
    gateway=wiring.gateway,
    ledger_bill=sandbox_bill.ledger_bill,
    make_dev_keys=files.make_dev_keys,
    notifications=wiring.notifications,
)

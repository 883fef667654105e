"""Every channel's auth-code rule by Channel, without importing any adapter: what the
service point's validation and the POS's sandbox codes look up. registry.py's specs
carry the same rules (a unit test holds the two together)."""

from __future__ import annotations

from orchestrator.channels.alipay.codes import AUTH_CODE as ALIPAY
from orchestrator.channels.unionpay.codes import AUTH_CODE as UNIONPAY
from orchestrator.channels.wechat.codes import AUTH_CODE as WECHAT
from orchestrator.domain.codes import AuthCodeRule, check_no_auth_code
from orchestrator.domain.states import Channel

AUTH_CODES: dict[Channel, AuthCodeRule] = {
    Channel.WECHAT: WECHAT,
    Channel.ALIPAY: ALIPAY,
    Channel.UNIONPAY: UNIONPAY,
}


def check_auth_code(channel: Channel, code: str) -> None:
    rule = AUTH_CODES.get(channel)
    if rule is None:
        check_no_auth_code(code)
    else:
        rule.check(channel, code)

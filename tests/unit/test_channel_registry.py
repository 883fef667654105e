"""The channel registry: every provider channel has one complete spec, and what it holds
is what the channel's own modules use."""

from __future__ import annotations

import pytest

from orchestrator.channels import registry
from orchestrator.channels.alipay import outcomes as alipay_outcomes
from orchestrator.channels.registry import check_auth_code
from orchestrator.channels.unionpay import outcomes as unionpay_outcomes
from orchestrator.channels.wechat import adapter as wechat_adapter
from orchestrator.config import PROVIDER_CHANNELS
from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.states import Channel
from orchestrator.pos import sandbox_code


def test_every_provider_channel_and_only_those_has_a_spec() -> None:
    assert set(registry.CHANNELS) == set(PROVIDER_CHANNELS) == set(Channel) - {Channel.CASH}
    for channel, spec in registry.CHANNELS.items():
        assert spec.channel is channel


def test_cash_has_no_spec() -> None:
    with pytest.raises(KeyError, match="CASH"):
        registry.spec(Channel.CASH)


def test_each_channel_is_registered_once() -> None:
    assert len(registry.SPECS) == len(registry.CHANNELS)
    names = [spec.display_name for spec in registry.SPECS]
    assert all(names) and len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("channel", "module"),
    [
        (Channel.WECHAT, wechat_adapter),
        (Channel.ALIPAY, alipay_outcomes),
        (Channel.UNIONPAY, unionpay_outcomes),
    ],
)
def test_the_spec_holds_the_allow_lists_the_adapter_decides_with(
    channel: Channel, module: object
) -> None:
    """`module`: where the channel's answers are read (Alipay's and UnionPay's
    outcomes.py, WeChat's adapter)."""
    spec = registry.spec(channel)
    assert spec.declined is module.DECLINED  # type: ignore[attr-defined]
    assert spec.refund_declined is module.REFUND_DECLINED  # type: ignore[attr-defined]
    assert spec.declined and spec.refund_declined


@pytest.mark.parametrize("channel", list(registry.CHANNELS))
@pytest.mark.parametrize("ending", ["0000", "1111", "3333"])
def test_sandbox_codes_satisfy_the_channels_rule(channel: Channel, ending: str) -> None:
    code = sandbox_code(channel.value.lower(), ending)
    check_auth_code(channel, code)
    assert code.endswith(ending)


@pytest.mark.parametrize("channel", list(registry.CHANNELS))
def test_a_code_of_another_channel_is_refused(channel: Channel) -> None:
    others = [c for c in registry.CHANNELS if c is not channel]
    refused = 0
    for other in others:
        try:
            check_auth_code(channel, sandbox_code(other.value.lower(), "0000"))
        except InvalidArgument as error:
            assert channel.value in str(error)
            refused += 1
    assert refused == len(others)


EMPTY_BILL = {
    Channel.WECHAT: "^WeChat bill: no header row$",
    Channel.ALIPAY: "^Alipay bill: not a zip file$",
    Channel.UNIONPAY: "^UnionPay settlement file: not a zip$",
}


@pytest.mark.parametrize("channel", list(registry.CHANNELS))
def test_an_empty_bill_is_refused_by_the_channels_parser(channel: Channel) -> None:
    with pytest.raises(ValueError, match=EMPTY_BILL[channel]):
        registry.spec(channel).parse_bill(b"")

"""The one place a channel is found: Channel -> ChannelSpec. The engine's adapters, the
sandbox host's gateways, reconciliation's bill parsers, the auth-code rules, the dev key
material and the names on receipts are all looked up here (docs/PROVIDERS.md, "Adding a
channel"). A channel is registered by one entry in SPECS."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from orchestrator.channels.alipay.spec import SPEC as ALIPAY
from orchestrator.channels.spec import ChannelSpec
from orchestrator.channels.unionpay.spec import SPEC as UNIONPAY
from orchestrator.channels.wechat.spec import SPEC as WECHAT
from orchestrator.domain.auth_codes import check_no_auth_code
from orchestrator.domain.states import Channel

SPECS: tuple[ChannelSpec, ...] = (WECHAT, ALIPAY, UNIONPAY)

CHANNELS: dict[Channel, ChannelSpec] = {spec.channel: spec for spec in SPECS}


def spec(channel: Channel) -> ChannelSpec:
    """The channel's spec; a channel without a provider (cash) has none."""
    try:
        return CHANNELS[channel]
    except KeyError:
        raise KeyError(f"{channel} has no provider channel package") from None


def check_auth_code(channel: Channel, code: str) -> None:
    found = CHANNELS.get(channel)
    if found is None:
        check_no_auth_code(code)
    else:
        found.auth_code.check(channel, code)


def ensure_dev_keys(keys_dir: Path, channels: Iterable[Channel] | None = None) -> None:
    """Make the missing dev material of the sandboxed `channels` (default: all), never
    over a file."""
    for channel in CHANNELS if channels is None else channels:
        spec(channel).make_dev_keys(keys_dir)

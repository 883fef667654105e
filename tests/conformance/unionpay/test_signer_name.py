"""UnionPay's signer: the SDK trusts a signPubKeyCert only when its holder (the third
`@`-part of the CN) is UnionPay's (中国银联股份有限公司; 00040000:SIGN in the test
environment). Every merchant's own signing certificate chains to the same CFCA
intermediate, so without that check a merchant could forge a "paid" notification."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from orchestrator.channels.unionpay.keys import UnionPayKeys
from orchestrator.channels.unionpay.notify import UnionPayNotifications
from orchestrator.config import ConfigError, parse_config
from orchestrator.domain.states import Channel
from orchestrator.providers.certificates import SigningIdentity, certificate_pem
from orchestrator.providers.notices import NoticeRefused
from orchestrator.providers.port import TradeStatus
from tests.conformance.unionpay.acp import Signer
from tests.conformance.unionpay.conftest import MER_ID, Authority
from tests.support import small_config_data


def notification(signer: Signer) -> bytes:
    fields = {
        "accessType": "0", "bizType": "000000", "currencyCode": "156", "encoding": "UTF-8",
        "merId": MER_ID, "orderId": "P0000000000000001", "queryId": "201702241035454938048",
        "respCode": "00", "respMsg": "成功[0000000]", "signMethod": "01", "txnAmt": "8000",
        "txnSubType": "06", "txnTime": "20170224103545", "txnType": "01", "version": "5.1.0",
    }  # fmt: skip
    return urlencode(signer.signed(fields)).encode()


def signer_named(authority: Authority, holder: str) -> Signer:
    identity = authority.identity(f"041@Z12@{holder}@00000001")
    return Signer(identity.key, certificate_pem(identity.certificate).decode())


async def test_a_merchants_own_certificate_cannot_sign_a_notification(
    authority: Authority, merchant: SigningIdentity
) -> None:
    """Fails on the code where an empty signer_name let every certificate under the
    configured intermediate sign."""
    for signer_name in ("", "中国银联股份有限公司"):
        keys = UnionPayKeys(merchant, authority.root, authority.middle, signer_name)
        verifier = UnionPayNotifications(keys, MER_ID)
        forged = notification(signer_named(authority, f"{MER_ID}:SIGN"))
        with pytest.raises(NoticeRefused, match="holder"):
            await verifier.verify({}, forged)


async def test_unionpays_own_signer_is_trusted(
    authority: Authority, merchant: SigningIdentity
) -> None:
    keys = UnionPayKeys(merchant, authority.root, authority.middle, "中国银联股份有限公司")
    verifier = UnionPayNotifications(keys, MER_ID)
    body = notification(signer_named(authority, "中国银联股份有限公司"))
    notice = await verifier.verify({}, body)
    assert notice.trade_status is TradeStatus.PAID and notice.amount_fen == 8000


def live(**unionpay: Any) -> dict[str, Any]:
    data = small_config_data()
    data.setdefault("providers", {})["UNIONPAY"] = {
        "base_url": "https://gateway.95516.com",
        **unionpay,
    }
    return data


def test_a_live_unionpay_without_signer_name_is_refused_at_start() -> None:
    """Fails on the code whose signer_name defaulted to empty, live or not."""
    with pytest.raises(ConfigError, match=r"providers\.UNIONPAY\.signer_name: is required"):
        parse_config(live(), "windowpay.toml")
    config = parse_config(live(signer_name="中国银联股份有限公司"), "windowpay.toml")
    settings = config.providers[Channel.UNIONPAY]
    assert settings.credentials["signer_name"] == "中国银联股份有限公司"
    sandboxed = parse_config(small_config_data(), "windowpay.toml").providers[Channel.UNIONPAY]
    assert (sandboxed.base_url, sandboxed.credentials["signer_name"]) == ("", "")

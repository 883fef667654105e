"""UnionPay's backUrl notifications as the ACP demos read them. The demos' notification
handlers take respCode 00 and A6 (有缺陷的成功) as a success to be confirmed by a query,
and anything else as "not a success"; none of them refuses a verified notification."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from orchestrator.channels.unionpay.keys import UnionPayKeys
from orchestrator.channels.unionpay.notify import UnionPayNotifications
from orchestrator.providers.certificates import SigningIdentity
from orchestrator.providers.port import TradeStatus
from tests.conformance.unionpay.conftest import MER_ID, Authority
from tests.conformance.unionpay.test_signer_name import signer_named

UNIONPAY = "中国银联股份有限公司"


def sale_notification(authority: Authority, code: str) -> bytes:
    fields = {
        "accessType": "0", "bizType": "000000", "currencyCode": "156", "encoding": "UTF-8",
        "merId": MER_ID, "orderId": "P0000000000000001", "queryId": "201702241035454938048",
        "respCode": code, "respMsg": "x", "signMethod": "01", "txnAmt": "8000",
        "txnSubType": "07", "txnTime": "20170224103545", "txnType": "01", "version": "5.1.0",
    }  # fmt: skip
    return urlencode(signer_named(authority, UNIONPAY).signed(fields)).encode()


@pytest.mark.parametrize("code", ["A6", "01", "99"])
async def test_a_verified_notification_of_another_code_tells_nothing(
    authority: Authority, merchant: SigningIdentity, code: str
) -> None:
    """Fails on the code that refused it as if forged (HTTP 400, so UnionPay sent it
    again and again, counted as 'refused'): it is UnionPay's, and only the query says
    what it means."""
    keys = UnionPayKeys(merchant, authority.root, authority.middle, UNIONPAY)
    notice = await UnionPayNotifications(keys, MER_ID).verify(
        {}, sale_notification(authority, code)
    )
    assert notice.out_trade_no == "P0000000000000001"
    assert notice.trade_status is TradeStatus.CONFIRMING

"""UnionPay's backUrl notifications as the ACP demos read them. The demos' notification
handlers take respCode 00 and A6 (有缺陷的成功) as a success to be confirmed by a query,
and anything else as "not a success"; none of them refuses a verified notification."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from orchestrator.channels.unionpay.keys import UnionPayKeys
from orchestrator.channels.unionpay.notify import UnionPayNotifications
from orchestrator.providers.certificates import (
    SigningIdentity,
    certificate_pem,
    load_pem_certificate,
)
from orchestrator.providers.notices import NoticeRefused
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


SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")
MD2_WITH_RSA = bytes.fromhex("06092a864886f70d010102")  # an algorithm no library knows


@pytest.mark.parametrize(
    ("old", "new"),
    [(SHA256_WITH_RSA, MD2_WITH_RSA), (UNIONPAY.encode(), b"\xff" + UNIONPAY.encode()[1:])],
    ids=["unknown signature algorithm", "subject not UTF-8"],
)
async def test_a_certificate_the_library_cannot_read_is_refused(
    authority: Authority, merchant: SigningIdentity, old: bytes, new: bytes
) -> None:
    """Anyone may post to the notify URL. A signPubKeyCert naming a signature algorithm
    the crypto library does not know, or whose subject it cannot parse, must be refused
    like any other untrusted certificate. Fails on the code whose chain check let
    UnsupportedAlgorithm or ValueError escape: an HTTP 500 and a stack trace, counted
    nowhere."""
    forger = signer_named(authority, UNIONPAY)
    der = load_pem_certificate(forger.certificate_pem.encode()).public_bytes(Encoding.DER)
    spoilt = x509.load_der_x509_certificate(der.replace(old, new))
    forger.certificate_pem = certificate_pem(spoilt).decode()
    fields = dict(parse_qsl(sale_notification(authority, "00").decode()))
    body = urlencode(forger.signed(fields)).encode()
    keys = UnionPayKeys(merchant, authority.root, authority.middle, UNIONPAY)
    with pytest.raises(NoticeRefused, match="not trusted"):
        await UnionPayNotifications(keys, MER_ID).verify({}, body)

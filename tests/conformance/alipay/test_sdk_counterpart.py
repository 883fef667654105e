"""Alipay's official Python SDK (alipay-sdk-python, import path alipay.aop.api) as the
independent counterpart: it verifies windowpay's request signatures, it signs answers
and notifications that windowpay must accept, and it signs requests the sandbox must
accept and verifies the sandbox's answers.

Its signing helpers work on Python 3.11; its HTTP client does not reach a gateway on an
explicit port (WebUtils.get_http_connection adds the int port to a str), so requests it
signs are posted here by the test itself.
"""

from __future__ import annotations

import contextlib
import time
from datetime import date
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest
import rsa
from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.request.AlipayTradePayRequest import AlipayTradePayRequest
from alipay.aop.api.request.AlipayTradeQueryRequest import AlipayTradeQueryRequest
from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa2, verify_with_rsa

from orchestrator.channels.alipay.adapter import Alipay
from orchestrator.channels.alipay.files import alipay_keys
from orchestrator.channels.alipay.notify import AlipayNotifications
from orchestrator.domain.states import Channel
from orchestrator.providers.notices import Notice
from orchestrator.providers.port import (
    PayCall,
    ProviderError,
    QrCall,
    RefundAnswer,
    RefundCall,
    RefundStatus,
    ReverseAnswer,
    ReverseStatus,
    TradeAnswer,
    TradeRef,
    TradeStatus,
)
from orchestrator.providers.signing import load_private_key, load_public_key, sorted_pairs
from tests.conformance.alipay.conftest import (
    APP_ID,
    FakeGateway,
    Keys,
    Served,
    adapter,
    form,
    sdk_private,
    sdk_public,
)
from tests.support import code, provider_id

PAY = PayCall("W1ABC", "286648048691290423", 12345, "SP01", "T01", "科目一 考试费")
TRADE = TradeRef("W1ABC", 12345, 0)
REFUND = RefundCall(TRADE, "W1ABCR1", 345, 0)
QR = QrCall("W1ABC", 12345, "SP01", "T01", "科目一", 0, 120_000)

OPERATIONS = {
    "alipay.trade.pay": lambda a: a.pay(PAY),
    "alipay.trade.query": lambda a: a.query(TRADE),
    "alipay.trade.cancel": lambda a: a.reverse(TRADE),
    "alipay.trade.close": lambda a: a.close(TRADE),
    "alipay.trade.refund": lambda a: a.refund(REFUND),
    "alipay.trade.fastpay.refund.query": lambda a: a.refund_query(REFUND),
    "alipay.trade.precreate": lambda a: a.create_qr(QR),
    "alipay.data.dataservice.bill.downloadurl.query": lambda a: a.bill(date(2026, 1, 2)),
}


def sdk_answer(method: str, payload: dict[str, Any], keys: Keys) -> str:
    """An answer as the gateway sends it, signed by the SDK over the member's text."""
    raw = orjson.dumps(payload).decode()
    signature = sign_with_rsa2(sdk_private(keys.alipay), raw, "utf-8")
    return f'{{"{method.replace(".", "_")}_response":{raw},"sign":"{signature}"}}'


@pytest.mark.parametrize("method", sorted(OPERATIONS))
async def test_the_sdk_verifies_windowpays_request_signature(method: str, keys: Keys) -> None:
    refusal = {"code": "40004", "msg": "Business Failed", "sub_code": "X", "sub_msg": "x"}
    gateway = FakeGateway({method: [sdk_answer(method, refusal, keys)]})
    with contextlib.suppress(ProviderError):  # the answer does not matter: the request does
        await OPERATIONS[method](adapter(gateway, keys.alipay.public_key(), keys.app))
    params = form(gateway.sent[0])
    assert params["method"] == method
    signature = params.pop("sign")
    content = get_sign_content(params)
    assert content == sorted_pairs(params, exclude=frozenset()), "the same signed text"
    public = sdk_public(keys.app.public_key())
    assert verify_with_rsa(public, content.encode(), signature)
    params["app_id"] = "2021000000000002"
    with pytest.raises(rsa.VerificationError):  # how the SDK says "does not verify"
        verify_with_rsa(public, get_sign_content(params).encode(), signature)


SDK_ANSWERS = [
    (
        "alipay.trade.pay",
        {"code": "10000", "msg": "Success", "trade_no": "2026010222001", "out_trade_no": "W1ABC",
         "total_amount": "123.45", "buyer_logon_id": "159****5620"},
        TradeAnswer(TradeStatus.PAID, "2026010222001"),
    ),
    (
        "alipay.trade.query",
        {"code": "10000", "msg": "Success", "trade_no": "2026010222001", "out_trade_no": "W1ABC",
         "total_amount": "123.45", "trade_status": "TRADE_FINISHED"},
        TradeAnswer(TradeStatus.PAID, "2026010222001", "TRADE_FINISHED"),
    ),
    (
        "alipay.trade.pay",
        {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.BUYER_BALANCE_NOT_ENOUGH",
         "sub_msg": "买家余额不足"},
        TradeAnswer(TradeStatus.DECLINED, reason="ACQ.BUYER_BALANCE_NOT_ENOUGH"),
    ),
    (
        "alipay.trade.cancel",
        {"code": "10000", "msg": "Success", "out_trade_no": "W1ABC", "retry_flag": "N",
         "action": "refund"},
        ReverseAnswer(ReverseStatus.DONE, "cancelled (refund)"),
    ),
    (
        "alipay.trade.refund",
        {"code": "10000", "msg": "Success", "trade_no": "2026010222001", "out_trade_no": "W1ABC",
         "fund_change": "Y", "refund_fee": "3.45"},
        RefundAnswer(RefundStatus.SUCCEEDED, "2026010222001"),
    ),
    (
        "alipay.trade.fastpay.refund.query",
        {"code": "10000", "msg": "Success", "trade_no": "2026010222001", "out_trade_no": "W1ABC",
         "out_request_no": "W1ABCR1", "refund_amount": "3.45", "total_amount": "123.45"},
        RefundAnswer(RefundStatus.SUCCEEDED, "2026010222001"),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("method", "payload", "expected"), SDK_ANSWERS)
async def test_windowpay_accepts_answers_the_sdk_signs(
    method: str, payload: dict[str, Any], expected: object, keys: Keys
) -> None:
    gateway = FakeGateway({method: [sdk_answer(method, payload, keys)]})
    alipay = adapter(gateway, keys.alipay.public_key(), keys.app)
    assert await OPERATIONS[method](alipay) == expected


async def test_windowpay_accepts_a_notification_the_sdk_signs(keys: Keys) -> None:
    now = time.time()
    params = {
        "notify_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now + 8 * 3600)),
        "notify_type": "trade_status_sync",
        "notify_id": "2026010200222155624068450559358070",
        "app_id": APP_ID,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": "2026010222001",
        "out_trade_no": "W1ABC",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "123.45",
        "subject": "科目一 考试费",
        "gmt_payment": "2026-01-02 10:00:00",
    }
    signed = dict(params, sign_type="RSA2")
    signed["sign"] = sign_with_rsa2(sdk_private(keys.alipay), get_sign_content(params), "utf-8")

    async def no_refunds(out_trade_no: str, out_request_no: str) -> None:
        return None

    verifier = AlipayNotifications(
        keys.alipay.public_key(), APP_ID, 300, lambda: now, refunds=no_refunds
    )
    assert await verifier.verify({}, urlencode(signed).encode()) == Notice(
        Channel.ALIPAY, "W1ABC", "2026010222001", 12345, TradeStatus.PAID
    )


def sdk_client(served: Served) -> DefaultAlipayClient:
    files = alipay_keys(served.keys_dir)
    config = AlipayClientConfig()
    config.server_url = f"{served.gateway.base_url}/gateway.do"
    config.app_id = APP_ID
    config.app_private_key = sdk_private(load_private_key(files.merchant_private))
    config.alipay_public_key = sdk_public(load_public_key(files.platform_public))
    return DefaultAlipayClient(alipay_client_config=config)


async def post(served: Served, body: str) -> bytes:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{served.gateway.base_url}/gateway.do",
            data=body.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
        ) as answer,
    ):
        assert answer.status == 200
        return await answer.read()


async def test_the_sandbox_accepts_what_the_sdk_signs_and_the_sdk_verifies_its_answers(
    sandbox: Served,
) -> None:
    client = sdk_client(sandbox)
    out_trade_no = provider_id("S")
    pay = AlipayTradePayRequest()
    pay.biz_content = {
        "out_trade_no": out_trade_no, "scene": "bar_code",
        "auth_code": code(Channel.ALIPAY), "subject": "科目一", "total_amount": "80.00",
    }  # fmt: skip
    body = await post(sandbox, client.sdk_execute(pay))
    parse = client._DefaultAlipayClient__parse_response  # type: ignore[attr-defined]
    paid = orjson.loads(parse(body))
    assert (paid["code"], paid["out_trade_no"], paid["total_amount"]) == (
        "10000", out_trade_no, "80.00",
    )  # fmt: skip
    query = AlipayTradeQueryRequest()
    query.biz_content = {"out_trade_no": out_trade_no}
    found = orjson.loads(parse(await post(sandbox, client.sdk_execute(query))))
    assert found["trade_status"] == "TRADE_SUCCESS"
    # and a body the SDK signed, changed afterwards, is refused by the sandbox
    tampered = client.sdk_execute(query).replace(out_trade_no, provider_id("S"))
    refused = orjson.loads(await post(sandbox, tampered))
    assert refused["error_response"]["sub_code"] == "isv.invalid-signature"


async def test_the_adapter_and_the_sdk_read_the_sandboxs_answer_alike(sandbox: Served) -> None:
    """The same trade, asked by windowpay's adapter and by the SDK's parser."""
    out_trade_no = provider_id("S")
    call = PayCall(out_trade_no, code(Channel.ALIPAY), 8000, "SP01", "T01", "科目一")
    assert (await sandbox.adapter.pay(call)).status is TradeStatus.PAID
    client = sdk_client(sandbox)
    query = AlipayTradeQueryRequest()
    query.biz_content = {"out_trade_no": out_trade_no}
    parse = client._DefaultAlipayClient__parse_response  # type: ignore[attr-defined]
    by_sdk = orjson.loads(parse(await post(sandbox, client.sdk_execute(query))))
    by_adapter = await Alipay.query(sandbox.adapter, TradeRef(out_trade_no, 8000, 0))
    assert by_adapter == TradeAnswer(TradeStatus.PAID, by_sdk["trade_no"], by_sdk["trade_status"])

"""windowpay's WeChat sandbox, driven by wechatpayv3's own client (the merchant's side of
an independent implementation): it must take wechatpayv3's requests, and wechatpayv3 must
take its signed answers and its certificate listing. Every answer has the shape of the
published samples (shapes.toml): a sandbox that drifts from them fails here."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from cryptography import x509
from wechatpayv3 import WeChatPay as Counterpart
from wechatpayv3 import WeChatPayType

from orchestrator.channels.wechat import files
from orchestrator.domain.states import Channel
from tests.conformance.wechat.conftest import (
    BILLS,
    SUB_MCHID,
    Sandbox,
    sample_json,
    shape_problems,
)
from tests.support import code

Answer = tuple[int, Any]


def counterpart(sandbox: Sandbox, *, partner: bool = False) -> Counterpart:
    """wechatpayv3 as the merchant (or the partner), with the sandbox's platform
    certificate on file and the sandbox as its gateway."""
    keys_dir = sandbox.keys_dir
    settings = sandbox.config.providers[Channel.WECHAT]
    certificates = keys_dir / f"wechatpayv3-{secrets.token_hex(4)}"
    certificates.mkdir()
    shutil.copy(files.platform_files(keys_dir)[1], certificates / "platform.pem")
    merchant = x509.load_pem_x509_certificate(files.merchant_cert(keys_dir).read_bytes())
    client = Counterpart(
        wechatpay_type=WeChatPayType.CODEPAY,
        mchid=settings.merchant_id,
        private_key=files.merchant_key(keys_dir).read_text(),
        cert_serial_no=format(merchant.serial_number, "X"),
        appid=settings.app_id,
        apiv3_key=files.apiv3_key(keys_dir).read_text(),
        notify_url="https://example.gov.cn/notify/wechat",
        cert_dir=str(certificates),
        partner_mode=partner,
        timeout=(5, 20),
    )
    client._core._gate_way = sandbox.url
    return client


async def call(function: Any, *args: Any, **kwargs: Any) -> Answer:
    """A wechatpayv3 call (blocking, so in a thread while the sandbox serves); its JSON
    answer parsed. wechatpayv3 raises if a 2xx answer's signature does not verify."""
    status, text = await asyncio.to_thread(function, *args, **kwargs)
    return status, json.loads(text) if isinstance(text, str) and text else text


def assert_shape(kind: str, answer: Answer, status: int) -> Any:
    assert answer[0] == status, answer
    assert shape_problems(kind, answer[1]) == [], answer
    return answer[1]


def assert_empty(answer: Answer) -> None:
    """204 No Content."""
    assert answer[0] == 204 and not answer[1], answer


def out_no() -> str:
    return "C" + secrets.token_hex(10).upper()


def pay_kwargs(no: str, ending: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": "科目一",
        "out_trade_no": no,
        "amount": {"total": 8000, "currency": "CNY"},
        "payer": {"auth_code": code(Channel.WECHAT, ending)},
        "scene_info": {"store_info": {"out_id": "SP01"}, "device_id": "T01"},
        "pay_type": WeChatPayType.CODEPAY,
        **extra,
    }


def native_kwargs(no: str, scene_info: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "description": "科目一",
        "out_trade_no": no,
        "amount": {"total": 8000, "currency": "CNY"},
        "time_expire": "2099-01-01T00:00:00+08:00",
        "scene_info": scene_info,
        "pay_type": WeChatPayType.NATIVE,
        **extra,
    }


@pytest.fixture(scope="module")
def wechatpayv3(sandbox: Sandbox) -> Counterpart:
    return counterpart(sandbox)


async def test_the_certificate_listing(sandbox: Sandbox, wechatpayv3: Counterpart) -> None:
    listing = assert_shape(
        "certificates", await call(wechatpayv3._core.request, "/v3/certificates"), 200
    )
    for entry in listing["data"]:
        assert shape_problems("certificate_entry", entry) == []
    wechatpayv3._core._certificates.clear()
    await asyncio.to_thread(wechatpayv3._core._update_certificates)  # opens each entry
    assert [format(c.serial_number, "X") for c in wechatpayv3._core._certificates] == [
        sandbox.gateway.keys.own_serial
    ]


async def test_code_payments(wechatpayv3: Counterpart) -> None:
    paid = out_no()
    trade = assert_shape("trade", await call(wechatpayv3.pay, **pay_kwargs(paid, "0000")), 200)
    assert (trade["trade_state"], trade["trade_type"]) == ("SUCCESS", "MICROPAY")
    confirming = await call(wechatpayv3.pay, **pay_kwargs(out_no(), "1111"))
    assert confirming == (202, {"trade_state": "USERPAYING"})
    assert shape_problems("codepay_confirming", confirming[1]) == []
    assert_shape("error", await call(wechatpayv3.pay, **pay_kwargs(out_no(), "3333")), 403)
    queried = assert_shape("trade", await call(wechatpayv3.query, out_trade_no=paid), 200)
    assert queried["transaction_id"] == trade["transaction_id"]
    missing = assert_shape("error", await call(wechatpayv3.query, out_trade_no=out_no()), 404)
    assert missing["code"] == "ORDER_NOT_EXIST"


async def test_reverse_answers(sandbox: Sandbox, wechatpayv3: Counterpart) -> None:
    """The v3 reverse answer names the trade and has no `recall`; "try again" is a
    SYSTEM_ERROR; a number with no trade is ORDER_NOT_EXIST, and nothing is recorded."""
    never = out_no()
    await call(wechatpayv3.pay, **pay_kwargs(never, "2222"))
    done = assert_shape("reverse", await call(wechatpayv3.codepay_reverse, never), 200)
    assert done["out_trade_no"] == never and "recall" not in done
    retried = out_no()
    await call(wechatpayv3.pay, **pay_kwargs(retried, "8888"))
    again = assert_shape("error", await call(wechatpayv3.codepay_reverse, retried), 500)
    assert again["code"] == "SYSTEM_ERROR"
    assert_shape("reverse", await call(wechatpayv3.codepay_reverse, retried), 200)
    unknown = out_no()
    missing = assert_shape("error", await call(wechatpayv3.codepay_reverse, unknown), 404)
    assert missing["code"] == "ORDER_NOT_EXIST" and sandbox.bank.trade(unknown) is None


async def test_native_codes(sandbox: Sandbox, wechatpayv3: Counterpart) -> None:
    scene = {"payer_client_ip": "14.23.150.211", "device_id": "T01", "store_info": {"id": "SP01"}}
    no = out_no()
    made = assert_shape("native", await call(wechatpayv3.pay, **native_kwargs(no, scene)), 200)
    assert_shape("trade", await call(wechatpayv3.query, out_trade_no=no), 200)
    # Declined at the payer's phone: a Native trade stays NOTPAY (PAYERROR is a code
    # payment's state only), so the same code can still be paid.
    async with aiohttp.ClientSession() as session:
        scan = {"code_url": made["code_url"], "behaviour": "decline"}
        async with session.post(f"{sandbox.url}/_sandbox/payer-app/scan", json=scan) as answer:
            assert answer.status == 200
    declined = assert_shape("trade", await call(wechatpayv3.query, out_trade_no=no), 200)
    assert (declined["trade_state"], declined["trade_type"]) == ("NOTPAY", "NATIVE")
    assert_empty(await call(wechatpayv3.close, no))
    closed = assert_shape("trade", await call(wechatpayv3.query, out_trade_no=no), 200)
    assert closed["trade_state"] == "CLOSED"


async def test_native_needs_the_payer_client_ip(wechatpayv3: Counterpart) -> None:
    """What WeChat answers a Native order whose scene_info lacks payer_client_ip."""
    scene = {"device_id": "T01", "store_info": {"id": "SP01"}}
    refused = assert_shape(
        "error", await call(wechatpayv3.pay, **native_kwargs(out_no(), scene)), 400
    )
    assert (refused["code"], refused["detail"]["field"]) == (
        "PARAM_ERROR", "/scene_info/payer_client_ip",
    )  # fmt: skip


async def test_refunds(wechatpayv3: Counterpart) -> None:
    paid = out_no()
    await call(wechatpayv3.pay, **pay_kwargs(paid, "0000"))
    amount = {"refund": 3000, "total": 8000, "currency": "CNY"}
    refund = assert_shape(
        "refund", await call(wechatpayv3.refund, "R" + paid, amount, out_trade_no=paid), 200
    )
    assert (refund["status"], refund["amount"]["refund"]) == ("SUCCESS", 3000)
    assert_shape("refund", await call(wechatpayv3.query_refund, "R" + paid), 200)
    too_much = {"refund": 9000, "total": 8000, "currency": "CNY"}
    refused = await call(wechatpayv3.refund, "R2" + paid, too_much, out_trade_no=paid)
    assert assert_shape("error", refused, 400)["code"] == "INVALID_REQUEST"
    low = out_no()
    await call(wechatpayv3.pay, **pay_kwargs(low, "2525"))
    refused = await call(wechatpayv3.refund, "R" + low, amount, out_trade_no=low)
    assert assert_shape("error", refused, 403)["code"] == "NOT_ENOUGH"
    assert_shape("error", await call(wechatpayv3.query_refund, "R" + low), 404)


async def test_bills(wechatpayv3: Counterpart) -> None:
    await call(wechatpayv3.pay, **pay_kwargs(out_no(), "0000"))
    quiet = date.today() - timedelta(days=400)  # no trades that day
    none = assert_shape("error", await call(wechatpayv3.trade_bill, quiet.isoformat()), 400)
    assert none["code"] == "NO_STATEMENT_EXIST"
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    answer = assert_shape("tradebill", await call(wechatpayv3.trade_bill, today), 200)
    status, content = await asyncio.to_thread(wechatpayv3.download_bill, answer["download_url"])
    assert status == 200
    real = lines_of((BILLS / "wechat_tradebill_27col_2021-01-28.csv").read_bytes())
    ours = lines_of(content)
    assert ours[0] == real[0] and ours[-2] == real[-2]  # the columns and the summary's


def lines_of(content: bytes) -> list[str]:
    return [line for line in content.decode("utf-8-sig").splitlines() if line.strip()]


# ---- partner mode --------------------------------------------------------------------------


async def test_a_partner_through_wechatpayv3(partner_sandbox: Sandbox) -> None:
    partner = counterpart(partner_sandbox, partner=True)
    sub = {"sub_mchid": SUB_MCHID}
    no = out_no()
    trade = assert_shape(
        "trade_partner", await call(partner.pay, **pay_kwargs(no, "0000", **sub)), 200
    )
    assert trade["sub_mchid"] == SUB_MCHID
    assert_shape("trade_partner", await call(partner.query, out_trade_no=no, **sub), 200)
    amount = {"refund": 100, "total": 8000, "currency": "CNY"}
    refunded = await call(partner.refund, "R" + no, amount, out_trade_no=no, **sub)
    assert_shape("refund", refunded, 200)
    assert_shape("refund", await call(partner.query_refund, "R" + no, **sub), 200)
    never = out_no()
    await call(partner.pay, **pay_kwargs(never, "2222", **sub))
    assert_shape("reverse_partner", await call(partner.codepay_reverse, never, **sub), 200)
    scene = {"payer_client_ip": "10.1.2.3", "store_info": {"id": "SP01"}}
    qr = out_no()
    assert_shape("native", await call(partner.pay, **native_kwargs(qr, scene, **sub)), 200)
    assert_empty(await call(partner.close, qr, **sub))
    other = {"sub_mchid": "1900000999"}
    refused = await call(partner.pay, **pay_kwargs(out_no(), "0000", **other))
    assert assert_shape("error", refused, 400)["code"] == "PARAM_ERROR"


async def test_partner_notifications_name_the_sub_merchant(partner_sandbox: Sandbox) -> None:
    paid = await partner_sandbox.bank.pay(out_no(), "134567890123450000", 8000, "SP01")
    assert paid.trade is not None
    sent = partner_sandbox.gateway.notification(paid.trade, None)
    read = counterpart(partner_sandbox, partner=True)._core.callback(sent.headers, sent.body)
    assert read is not None and shape_problems("trade_partner", read["resource"]) == []


def test_the_samples_have_their_shapes() -> None:
    """shapes.toml agrees with the samples it was written from."""
    for name, kind in [
        ("answers/codepay_paid.json", "trade"),
        ("answers/query_paid.json", "trade"),
        ("answers/query_notpay.json", "trade"),
        ("answers/query_partner_paid.json", "trade_partner"),
        ("answers/codepay_userpaying.json", "codepay_confirming"),
        ("answers/native_code_url.json", "native"),
        ("answers/reverse_done.json", "reverse"),
        ("answers/reverse_partner_done.json", "reverse_partner"),
        ("answers/refund_success.json", "refund"),
        ("answers/tradebill.json", "tradebill"),
        ("certificates/java_sdk_download.json", "certificates"),
        ("notifications/envelope_transaction.json", "envelope"),
        ("notifications/transaction_resource.json", "trade"),
        ("notifications/transaction_resource_partner.json", "trade_partner"),
        ("notifications/refund_resource.json", "refund_resource"),
        ("notifications/refund_resource_partner.json", "refund_resource_partner"),
    ]:
        assert shape_problems(kind, sample_json(name)) == [], name
    for entry in sample_json("answers/errors.json").values():
        assert shape_problems("error", entry["body"]) == []
    for entry in sample_json("certificates/java_sdk_download.json")["data"]:
        assert shape_problems("certificate_entry", entry) == []

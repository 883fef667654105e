"""The Alipay sandbox answers in the shape of the real gateway: the envelope, the JSON
encoding (compact, "/" escaped, Chinese as UTF-8), only fields the official SDK's
response models know, string values, two-decimal amounts, and notifications with only
the documented parameters. Every check is first run on the public samples, so a check
the real gateway would fail cannot stand; then on what the sandbox answers over HTTP in
every behaviour the suite can make it show. A sandbox that drifts fails here."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import re
import time
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import pytest

from orchestrator.channels.alipay.adapter import Alipay, raw_member
from orchestrator.channels.alipay.trust import merchant_keys
from orchestrator.config import Credentials
from orchestrator.domain.states import Channel
from orchestrator.providers.http import HttpAnswer, HttpClient
from orchestrator.providers.port import (
    OutcomeUnknown,
    PayCall,
    ProviderError,
    QrCall,
    RefundCall,
    TradeRef,
)
from orchestrator.sandbox.common import PayerBehaviour
from orchestrator.sandbox.payer import scan
from tests.conformance.alipay.conftest import APP_ID, WIRE, Served, answer, form, notification
from tests.support import code, provider_id

# A sign, except on an error answer: the gateway answers a request it cannot take as the
# app's unsigned (the documented isv.invalid-app-id sample).
ENVELOPE = re.compile(
    r'^\{"(?P<name>[a-z_]+_response)":(?P<member>\{.*\})'
    r'(?P<signed>,(?:"alipay_cert_sn":"[0-9a-f]{32}",)?"sign":"[A-Za-z0-9+/]+=*")?\}$',
    re.DOTALL,
)
AMOUNT = re.compile(r"^\d+\.\d{2}$")
AMOUNTS = {
    "total_amount", "receipt_amount", "buyer_pay_amount", "point_amount", "invoice_amount",
    "refund_fee", "send_back_fee", "refund_amount",
}  # fmt: skip
COMMON = {"code", "msg", "sub_code", "sub_msg"}
# The 异步通知参数 table of the face-to-face payment pages (SOURCES.md), and auth_app_id,
# which every published notification carries too.
NOTIFICATION_FIELDS = {
    "notify_time", "notify_type", "notify_id", "app_id", "auth_app_id", "charset",
    "version", "sign_type", "sign", "trade_no", "out_trade_no", "out_biz_no", "buyer_id",
    "buyer_logon_id", "seller_id", "seller_email", "trade_status", "total_amount",
    "receipt_amount", "invoice_amount", "buyer_pay_amount", "point_amount", "refund_fee",
    "subject", "body", "gmt_create", "gmt_payment", "gmt_refund", "gmt_close",
    "fund_bill_list", "passback_params", "voucher_detail_list",
}  # fmt: skip
NOTIFICATION_REQUIRED = {
    "notify_time", "notify_type", "notify_id", "app_id", "charset", "version", "sign_type",
    "sign", "trade_no", "out_trade_no", "trade_status", "seller_id", "buyer_id", "gmt_create",
}  # fmt: skip
TIMES = {
    "notify_time": r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d",
    "gmt_payment": r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d",
    "gmt_create": r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d",
    "seller_id": r"2088\d{12}",
    "buyer_id": r"2088\d{12}",
    "gmt_refund": r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{1,3}",
}
REAL_SAMPLES = [  # signed by Alipay's gateway or sandbox: their encoding is the real one
    "pay_success_gopay", "precreate_yansongda", "query_success_yansongda",
    "refund_query_success_yansongda", "close_success_yansongda", "refund_success_yansongda",
    "error_40003_nodesdk",
]  # fmt: skip
SAMPLES = sorted(p.stem for p in (WIRE / "answers").glob("*.json"))


def method_of(name: str) -> str:
    return name.removesuffix("_response").replace("_", ".")


def sdk_fields(method: str) -> set[str]:
    """The fields the official SDK's response model of `method` reads (an error_response
    has the common ones only)."""
    if method == "error":
        return COMMON
    model = "".join(part.title() for part in method.split(".")) + "Response"
    module = importlib.import_module(f"alipay.aop.api.response.{model}")
    return set(re.findall(r"'(\w+)' in response", inspect.getsource(module))) | COMMON


def encoding_problems(member: str) -> list[str]:
    """How the member's text differs from the gateway's writing."""
    written = json.dumps(json.loads(member), ensure_ascii=False, separators=(",", ":"))
    if written.replace("/", "\\/") != member:
        return [f"not written as the gateway writes JSON: {member}"]
    return []


def field_problems(method: str, member: Mapping[str, Any]) -> list[str]:
    problems = [f"{method}: unknown field {f}" for f in sorted(set(member) - sdk_fields(method))]
    if not {"code", "msg"} <= set(member):
        problems.append(f"{method}: no code or msg")
    if member.get("code") not in ("10000", "10003") and not {"sub_code", "sub_msg"} <= set(member):
        problems.append(f"{method}: an error answer without sub_code and sub_msg")
    for field, value in member.items():
        if not isinstance(value, str | list):
            problems.append(f"{method}: {field} is {type(value).__name__}, not a string")
        elif field in AMOUNTS and not AMOUNT.match(str(value)):
            problems.append(f"{method}: {field} {value!r} is not a two-decimal amount")
    return problems


def answer_problems(text: str, *, encoding: bool = True) -> list[str]:
    matched = ENVELOPE.match(text)
    if matched is None:
        return [f"not the gateway's envelope: {text[:120]}"]
    name = matched["name"]
    member = raw_member(text, name)
    assert member is not None
    problems = encoding_problems(member) if encoding else []
    parsed = json.loads(member)
    if not matched["signed"] and parsed.get("code") in ("10000", "10003"):
        problems.append(f"{name}: a success answer without a sign")
    return problems + field_problems(method_of(name), parsed)


def notification_problems(params: Mapping[str, str]) -> list[str]:
    problems = [f"unknown notification field {f}" for f in set(params) - NOTIFICATION_FIELDS]
    problems += [f"no {f}" for f in sorted(NOTIFICATION_REQUIRED - set(params))]
    for field in AMOUNTS & set(params):
        if not AMOUNT.match(params[field]):
            problems.append(f"{field} {params[field]!r} is not a two-decimal amount")
    for field, pattern in TIMES.items():
        if field in params and not re.fullmatch(pattern, params[field]):
            problems.append(f"{field} {params[field]!r} is not in the documented format")
    return problems


# ---- the checks hold for the public samples ----------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES)
def test_the_public_samples_pass_the_checks(sample: str) -> None:
    """Every sample's envelope and fields; the encoding of those the gateway signed (the
    documentation's own samples are typeset, not sent)."""
    text = answer(sample)
    if sample == "error_40003_nodesdk":  # another API, not one the SDK models here
        assert encoding_problems(raw_member(text, text[2 : text.index('"', 2)]) or "") == []
        return
    assert answer_problems(text, encoding=sample in REAL_SAMPLES) == []


@pytest.mark.parametrize("sample", sorted(p.stem for p in (WIRE / "notifications").glob("*")))
def test_the_public_notifications_pass_the_checks(sample: str) -> None:
    assert notification_problems(form(notification(sample))) == []


def test_the_checks_can_fail() -> None:
    real = answer("precreate_yansongda")
    assert answer_problems(real.replace("\\/", "/"))  # slashes not escaped
    assert answer_problems(real.replace('"msg":"Success"', '"msg": "Success"'))
    assert answer_problems(real.replace('"code":"10000"', '"code":10000'))
    assert answer_problems(real.replace('"msg":"Success"', '"msg":"Success","gmt_x":"1"'))
    assert answer_problems(real[: real.index(',"sign"')] + "}")  # a success needs its sign
    nodesdk = answer("error_40003_nodesdk")
    escaped = nodesdk.replace("解密出错", "\\u89e3\\u5bc6\\u51fa\\u9519")
    member = raw_member(escaped, "alipay_security_risk_content_analyze_response")
    assert member is not None and encoding_problems(member)
    assert notification_problems(
        {**form(notification("refund_first_partial")), "send_back_fee": "1.00"}
    )


# ---- the sandbox ------------------------------------------------------------------------


class Recording(HttpClient):
    """The sandbox gateway's raw answers, as they came over HTTP."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.answers: list[str] = []

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> HttpAnswer:
        got = await super().request(method, target, body=body, headers=headers, timeout_s=timeout_s)
        if method == "POST" and got.status == 200:  # (a 503 stands for a proxy's page)
            self.answers.append(got.body.decode())
        return got


def pay_call(ending: str, amount: int = 8000) -> PayCall:
    return PayCall(provider_id("S"), code(Channel.ALIPAY, ending), amount, "SP01", "T01", "科目一")


async def every_answer(sandbox: Served) -> list[str]:
    """Drive the sandbox through what it can answer."""
    recording = Recording(sandbox.gateway.base_url)
    alipay = Alipay(recording, merchant_keys(sandbox.keys_dir, Credentials()), APP_ID)
    paid = pay_call("0000")
    tries = [alipay.pay(paid), alipay.query(paid.trade)]
    for ending in ("1111", "2222", "3333", "9999", "4444", "8888"):
        call = pay_call(ending)
        tries += [alipay.pay(call), alipay.query(call.trade), alipay.reverse(call.trade)]
    resent = pay_call("1212")
    tries += [alipay.pay(resent), alipay.pay(resent)]
    tries += [alipay.query(TradeRef(provider_id("S"), 100, 0))]
    for ending in ("0000", "2525", "2323"):
        trade = pay_call(ending)
        refund = RefundCall(trade.trade, provider_id("R"), 300, 0)
        tries += [alipay.pay(trade), alipay.refund(refund), alipay.refund_query(refund)]
    tries += [alipay.refund_query(RefundCall(paid.trade, provider_id("R"), 1, 0))]
    tries += [alipay.refund(RefundCall(paid.trade, provider_id("R"), 9000, 0))]  # too much
    stranger = Alipay(recording, merchant_keys(sandbox.keys_dir, Credentials()), "2021000000000999")
    tries += [stranger.query(paid.trade)]  # an app_id the gateway does not know: unsigned
    tries += [alipay.bill(date.today()), alipay.bill(date.today() - timedelta(days=400))]
    try:
        for attempt in tries:
            with contextlib.suppress(ProviderError):  # an error answer has a shape too
                await attempt
        await qr_answers(alipay)
    finally:
        await recording.close()
    return recording.answers


async def qr_answers(alipay: Alipay) -> None:
    now = int(time.time() * 1000)
    calls = [
        QrCall(provider_id("Q"), 8000, "SP01", "T01", "科目一", now, now + 60_000) for _ in "123"
    ]
    codes = [await alipay.create_qr(call) for call in calls]
    await alipay.close(calls[0].trade)  # never scanned: no trade yet, then cancelled
    await scan(codes[1].code_url, PayerBehaviour.DECLINE)
    await alipay.query(calls[1].trade)
    await alipay.close(calls[1].trade)
    await alipay.close(calls[1].trade)  # closed already
    await scan(codes[2].code_url, PayerBehaviour.PAY)
    await alipay.close(calls[2].trade)  # paid


async def test_every_sandbox_answer_has_the_gateways_shape(sandbox: Served) -> None:
    texts = await every_answer(sandbox)
    codes = {json.loads(raw_member(t, t[2 : t.index('"', 2)]) or "{}").get("code") for t in texts}
    assert {"10000", "10003", "20000", "40002", "40004"} <= codes  # successes and errors
    problems = [p for text in texts for p in answer_problems(text)]
    assert problems == []


async def test_every_sandbox_notification_has_the_documented_parameters(
    sandbox: Served,
) -> None:
    call = pay_call("0000", 12345)
    await sandbox.adapter.pay(call)
    trade = sandbox.bank.trade(call.out_trade_no)
    assert trade is not None
    bodies = [sandbox.gateway.notification(trade, None)]
    for amount in (300, 200):
        reply = await sandbox.bank.refund(call.out_trade_no, provider_id("R"), amount)
        assert reply.trade is not None and reply.refund is not None
        bodies.append(sandbox.gateway.notification(reply.trade, reply.refund))
    sent = [form(body.body) for body in bodies if body is not None]
    assert [notification_problems(params) for params in sent] == [[], [], []]
    # as both Alipay-signed samples: the app the notice is for (no ISV acting for it)
    assert [p.get("auth_app_id") for p in sent] == [APP_ID] * 3
    assert [p.get("refund_fee") for p in sent] == [None, "3.00", "5.00"]  # all refunded so far
    await asyncio.sleep(0)


async def test_the_sandbox_answers_an_unknown_app_id_unsigned(sandbox: Served) -> None:
    """As the documented sample: the adapter then passes on what the gateway said."""
    keys = merchant_keys(sandbox.keys_dir, Credentials())
    stranger = Alipay(sandbox.client, keys, "2021000000000999")
    with pytest.raises(OutcomeUnknown, match=r"unsigned answer: 40002 .*isv\.invalid-app-id"):
        await stranger.query(TradeRef(provider_id("S"), 100, 0))


async def test_the_sandboxs_refund_answer_carries_what_the_signed_sample_does(
    sandbox: Served,
) -> None:
    """The signed sandbox sample of a refund carries buyer_logon_id, gmt_refund_pay and
    send_back_fee beside fund_change and refund_fee."""
    recording = Recording(sandbox.gateway.base_url)
    alipay = Alipay(recording, merchant_keys(sandbox.keys_dir, Credentials()), APP_ID)
    paid = pay_call("0000")
    try:
        await alipay.pay(paid)
        await alipay.refund(RefundCall(paid.trade, provider_id("R"), 300, 0))
    finally:
        await recording.close()
    refunded = json.loads(raw_member(recording.answers[-1], "alipay_trade_refund_response") or "")
    sample = json.loads(
        raw_member(answer("refund_success_yansongda"), "alipay_trade_refund_response") or ""
    )
    missing = set(sample) - set(refunded) - {"buyer_user_id"}  # (an id the SDK reads, not we)
    assert missing == set()
    assert re.fullmatch(TIMES["gmt_payment"], refunded["gmt_refund_pay"])

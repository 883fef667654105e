"""Every public answer sample through windowpay's Alipay adapter: it reads the sample,
takes the outcome the sample means, and checks the sample's own signature wherever the
key is public (the placeholder samples are signed again over their exact text)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from orchestrator.channels.alipay.adapter import BEIJING, Alipay, raw_member
from orchestrator.channels.alipay.bill import parse_alipay
from orchestrator.channels.alipay.sandbox import answer_text
from orchestrator.providers.bills import NoTradesThatDay
from orchestrator.providers.http import HttpAnswer, HttpClient
from orchestrator.providers.port import (
    BillNotReady,
    OutcomeUnknown,
    PayCall,
    ProviderError,
    ProviderUnavailable,
    QrAnswer,
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
from orchestrator.providers.signing import PublicKey, sign
from tests.conformance.alipay.conftest import (
    SIGN,
    WIRE,
    FakeGateway,
    Keys,
    adapter,
    answer,
    certificate_key,
    form,
    method_of,
    public_key,
    resigned,
)

BILL_ZIP = WIRE.parents[1] / "bills" / "alipay_trade_bill_2019-09-16.zip"
BILL_URL = (
    "http://dwbillcenter.alipay.com/downloadBillFile.resource?bizType=X&userId=X"
    "&fileType=X&bizDates=X&downloadFileName=X&fileId=X"
)
Operation = Callable[[Alipay], Awaitable[Any]]


def pay(out_trade_no: str, amount_fen: int) -> Operation:
    call = PayCall(out_trade_no, "286648048691290423", amount_fen, "SP01", "T01", "科目一")
    return lambda alipay: alipay.pay(call)


def query(out_trade_no: str, amount_fen: int) -> Operation:
    return lambda alipay: alipay.query(TradeRef(out_trade_no, amount_fen, 0))


def cancel(out_trade_no: str) -> Operation:
    return lambda alipay: alipay.reverse(TradeRef(out_trade_no, 100, 0))


def close(out_trade_no: str, amount_fen: int) -> Operation:
    return lambda alipay: alipay.close(TradeRef(out_trade_no, amount_fen, 0))


def refund(out_trade_no: str, amount_fen: int, out_request_no: str, refund_fen: int) -> Operation:
    call = RefundCall(TradeRef(out_trade_no, amount_fen, 0), out_request_no, refund_fen, 0)
    return lambda alipay: alipay.refund(call)


def refund_query(
    out_trade_no: str, amount_fen: int, out_request_no: str, refund_fen: int
) -> Operation:
    call = RefundCall(TradeRef(out_trade_no, amount_fen, 0), out_request_no, refund_fen, 0)
    return lambda alipay: alipay.refund_query(call)


def precreate(out_trade_no: str, amount_fen: int) -> Operation:
    now = int(time.time() * 1000)
    call = QrCall(out_trade_no, amount_fen, "SP01", "T01", "科目一", now, now + 120_000)
    return lambda alipay: alipay.create_qr(call)


@dataclass(frozen=True)
class Case:
    samples: tuple[str, ...]  # the first one answers the operation, the others follow
    signed_by: str  # "gopay", "yansongda" (their public keys) or "placeholder"
    operation: Operation
    expected: object  # the adapter's answer, or the error type it raises

    def __str__(self) -> str:
        return self.samples[0]


GOPAY_PAID = "2019082922001432790585666965"
SANDBOX_TRADE = "2023122122001499160501586202"
CASES = [
    Case(
        ("pay_success_gopay",), "gopay", pay("GZ201901301040361013", 1),
        TradeAnswer(TradeStatus.PAID, GOPAY_PAID),
    ),
    Case(
        ("pay_waiting_capture",), "placeholder", pay("170822000085721222000001002948", 265000),
        TradeAnswer(TradeStatus.CONFIRMING, "2017082221001004710224447407"),
    ),
    Case(("pay_unknown_20000",), "placeholder", pay("A1", 100), OutcomeUnknown),
    Case(("pay_system_error",), "placeholder", pay("A1", 100), OutcomeUnknown),
    Case(
        ("pay_declined_balance",), "placeholder", pay("A1", 100),
        TradeAnswer(TradeStatus.DECLINED, reason="ACQ.BUYER_BALANCE_NOT_ENOUGH"),
    ),
    Case(
        ("pay_declined_auth_code",), "placeholder", pay("A1", 100),
        TradeAnswer(TradeStatus.DECLINED, reason="ACQ.PAYMENT_AUTH_CODE_INVALID"),
    ),
    Case(("pay_already_paid",), "placeholder", pay("A1", 100), ProviderError),
    Case(
        ("query_success_yansongda",), "yansongda", query("1703141270", 1),
        TradeAnswer(TradeStatus.PAID, SANDBOX_TRADE, "TRADE_SUCCESS"),
    ),
    Case(
        ("query_waiting",), "placeholder", query("6823789339978248", 8888),
        TradeAnswer(
            TradeStatus.CONFIRMING, "2013112011001004330000121536", "WAIT_BUYER_PAY"
        ),
    ),
    Case(
        ("query_closed",), "placeholder", query("6823789339978248", 8888),
        TradeAnswer(TradeStatus.CLOSED, "2013112011001004330000121536", "TRADE_CLOSED"),
    ),
    Case(
        ("query_not_exist",), "placeholder", query("6823789339978248", 8888),
        TradeAnswer(TradeStatus.NOT_FOUND, reason="ACQ.TRADE_NOT_EXIST"),
    ),
    Case(
        ("cancel_closed",), "placeholder", cancel("6823789339978248"),
        ReverseAnswer(ReverseStatus.DONE, "cancelled (close)"),
    ),
    Case(
        ("cancel_retry",), "placeholder", cancel("6823789339978248"),
        ReverseAnswer(ReverseStatus.RETRY, "retry_flag=Y"),
    ),
    Case(
        ("close_success_yansongda",), "yansongda", close("1703226647", 1),
        ReverseAnswer(ReverseStatus.DONE, "closed"),
    ),
    Case(
        ("close_status_error", "query_closed"), "placeholder", close("6823789339978248", 8888),
        ReverseAnswer(ReverseStatus.DONE, "closed already (ACQ.TRADE_STATUS_ERROR)"),
    ),
    Case(
        ("close_not_exist", "cancel_closed"), "placeholder", close("6823789339978248", 8888),
        ReverseAnswer(ReverseStatus.DONE, "cancelled (close)"),
    ),
    Case(
        ("refund_success_yansongda",), "yansongda", refund("1703141270", 1, "1703141270", 1),
        RefundAnswer(RefundStatus.SUCCEEDED, SANDBOX_TRADE),
    ),
    Case(
        ("refund_declined_balance",), "placeholder", refund("A1", 100, "A1R1", 100),
        RefundAnswer(RefundStatus.FAILED, reason="ACQ.SELLER_BALANCE_NOT_ENOUGH"),
    ),
    Case(  # with out_request_no, more than is left: final, not asked again forever
        ("refund_fee_err_live",), "placeholder", refund("2017082114417614181", 100, "R1", 200),
        RefundAnswer(RefundStatus.FAILED, reason="ACQ.REASON_TRADE_REFUND_FEE_ERR"),
    ),
    Case(  # asked after the trade's refund period
        ("refund_trade_has_finished",), "placeholder", refund("A1", 100, "A1R1", 100),
        RefundAnswer(RefundStatus.FAILED, reason="ACQ.TRADE_HAS_FINISHED"),
    ),
    Case(
        ("refund_query_success_yansongda",), "yansongda",
        refund_query("1703141270", 1, "1703141270", 1),
        RefundAnswer(RefundStatus.SUCCEEDED, SANDBOX_TRADE),
    ),
    Case(
        ("refund_query_older_contract",), "placeholder",
        refund_query("20150320010101001", 10020, "20150320010101001", 1233),
        RefundAnswer(RefundStatus.SUCCEEDED, "2014112611001004680073956707"),
    ),
    Case(
        ("refund_query_empty",), "placeholder", refund_query("A1", 100, "A1R1", 100),
        RefundAnswer(RefundStatus.NOT_FOUND, reason="no such refund"),
    ),
    Case(
        ("precreate_yansongda",), "yansongda", precreate("1704093802", 1),
        QrAnswer("https://qr.alipay.com/bax07651xvtprxfkmxyf00a9"),
    ),
]  # fmt: skip


def gateway_for(case: Case, keys: Keys) -> tuple[FakeGateway, PublicKey]:
    """A gateway answering the case's samples, and the key their signatures verify with."""
    texts = [answer(name) for name in case.samples]
    if case.signed_by == "placeholder":
        texts = [resigned(t, _member(t), keys.alipay) for t in texts]
        verify_with = keys.alipay.public_key()
    elif case.signed_by == "gopay":
        verify_with = public_key("gopay_alipay_public.pem")
    else:
        verify_with = certificate_key("yansongda_alipayPublicCert.crt")
    by_method: dict[str, list[str]] = {}
    for text in texts:
        by_method.setdefault(_method(text), []).append(text)
    return FakeGateway(by_method), verify_with


def _member(text: str) -> str:
    return text[2 : text.index('"', 2)]


def _method(text: str) -> str:
    return _member(text).removesuffix("_response").replace("_", ".")


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_the_adapter_takes_the_outcome_each_sample_means(case: Case, keys: Keys) -> None:
    gateway, verify_with = gateway_for(case, keys)
    alipay = adapter(gateway, verify_with, keys.app)
    if isinstance(case.expected, type):
        with pytest.raises(case.expected) as raised:
            await case.operation(alipay)
        assert not isinstance(raised.value, ProviderUnavailable)
    else:
        assert await case.operation(alipay) == case.expected
    assert [method_of(body) for body in gateway.sent][: len(case.samples)] == [
        _method(answer(name)) for name in case.samples
    ]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_a_sample_changed_by_one_character_is_not_taken(case: Case, keys: Keys) -> None:
    """The signature check is real: the same sample, one value altered, is unknown."""
    gateway, verify_with = gateway_for(case, keys)
    first = gateway.answers[_method(answer(case.samples[0]))]
    first[0] = first[0].replace('"msg":"', '"msg":"x', 1)
    with pytest.raises(OutcomeUnknown, match="signature does not verify"):
        await case.operation(adapter(gateway, verify_with, keys.app))


async def test_the_bill_url_sample_leads_to_the_real_bill(keys: Keys) -> None:
    text = resigned(answer("bill_url_doc"), _member(answer("bill_url_doc")), keys.alipay)
    gateway = FakeGateway(
        {"alipay.data.dataservice.bill.downloadurl.query": [text]},
        {BILL_URL: BILL_ZIP.read_bytes()},
    )
    bill = await adapter(gateway, keys.alipay.public_key(), keys.app).bill(date(2019, 9, 16))
    assert bill == BILL_ZIP.read_bytes()
    assert len(parse_alipay(bill)) > 0


@pytest.mark.parametrize(
    ("asked_at", "expected"),
    [
        ("2019-09-17 08:59:59", BillNotReady),  # the day's bill is made by 09:00 next day
        ("2019-09-17 09:00:00", NoTradesThatDay),  # due and not there: no trades
    ],
)
async def test_no_bill_means_not_yet_or_no_trades_by_the_documented_time(
    keys: Keys, asked_at: str, expected: type[ProviderError]
) -> None:
    text = resigned(answer("bill_not_exist"), _member(answer("bill_not_exist")), keys.alipay)
    gateway = FakeGateway({"alipay.data.dataservice.bill.downloadurl.query": [text]})
    now = datetime.strptime(asked_at, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING).timestamp()
    alipay = adapter(gateway, keys.alipay.public_key(), keys.app, lambda: now)
    with pytest.raises(expected):
        await alipay.bill(date(2019, 9, 16))


def unsigned(text: str) -> str:
    """The sample's answer with its sign (and certificate SN) left out."""
    member = _member(text)
    raw = raw_member(text, member)
    assert raw is not None
    return f'{{"{member}":{raw}}}'


async def test_an_unsigned_error_answer_is_unknown_and_says_what_the_gateway_said(
    keys: Keys,
) -> None:
    """The documented answer to an unknown app_id has no sign. It used to be reported as
    "signature does not verify", which sent the operator to check Alipay's key."""
    text = answer("error_invalid_app_id_unsigned")
    gateway = FakeGateway({"alipay.trade.query": [text], "alipay.trade.pay": [text]})
    alipay = adapter(gateway, keys.alipay.public_key(), keys.app)
    with pytest.raises(OutcomeUnknown, match=r"unsigned answer: 40002 .*isv\.invalid-app-id"):
        await query("A1", 100)(alipay)
    with pytest.raises(OutcomeUnknown, match="无效的AppID参数"):
        await pay("A1", 100)(alipay)  # an unsigned answer decides nothing: not a decline


async def test_an_unsigned_decline_is_not_a_decline(keys: Keys) -> None:
    text = unsigned(answer("pay_declined_balance"))
    alipay = adapter(FakeGateway({"alipay.trade.pay": [text]}), keys.alipay.public_key(), keys.app)
    with pytest.raises(OutcomeUnknown, match=r"unsigned answer: 40004 .*BUYER_BALANCE_NOT_ENOUGH"):
        await pay("A1", 100)(alipay)


async def test_an_unsigned_success_is_not_taken(keys: Keys) -> None:
    text = unsigned(answer("pay_success_gopay"))
    alipay = adapter(FakeGateway({"alipay.trade.pay": [text]}), keys.alipay.public_key(), keys.app)
    with pytest.raises(OutcomeUnknown, match="without a signature"):
        await pay("GZ201901301040361013", 1)(alipay)


@pytest.mark.parametrize("changed", [False, True])
async def test_an_answer_signed_over_unescaped_slashes_is_taken(keys: Keys, changed: bool) -> None:
    """Alipay's Java and .NET clients verify again with "\\/" written "/" when the first
    check fails; the answer itself is read from its raw text."""
    text = answer("precreate_yansongda")
    raw = raw_member(text, "alipay_trade_precreate_response")
    assert raw is not None and "\\/" in raw
    signature = sign(keys.alipay, raw.replace("\\/", "/").encode())
    text = SIGN.sub(lambda _: f'"sign":"{signature}"', text, count=1)
    if changed:
        text = text.replace("bax07651", "bax07652", 1)
    gateway = FakeGateway({"alipay.trade.precreate": [text]})
    alipay = adapter(gateway, keys.alipay.public_key(), keys.app)
    if changed:
        with pytest.raises(OutcomeUnknown, match="signature does not verify"):
            await precreate("1704093802", 1)(alipay)
    else:
        expected = QrAnswer("https://qr.alipay.com/bax07651xvtprxfkmxyf00a9")
        assert await precreate("1704093802", 1)(alipay) == expected


@pytest.mark.parametrize("operation", ["pay", "precreate"])
async def test_the_subject_carries_none_of_the_characters_the_reference_forbids(
    keys: Keys, operation: str
) -> None:
    """Its subject field: "不可使用特殊字符，如 /，=，& 等"; at most 256 characters."""
    sample = "pay_success_gopay" if operation == "pay" else "precreate_yansongda"
    text = answer(sample)
    if operation == "pay":
        gateway = FakeGateway({"alipay.trade.pay": [text]})
        verify_with = public_key("gopay_alipay_public.pem")
    else:
        gateway = FakeGateway({"alipay.trade.precreate": [text]})
        verify_with = certificate_key("yansongda_alipayPublicCert.crt")
    alipay = adapter(gateway, verify_with, keys.app)
    now = int(time.time() * 1000)
    for description in ("科目一/科目二&补考=1", "考" * 300):
        if operation == "pay":
            call = PayCall(
                "GZ201901301040361013", "286648048691290423", 1, "SP01", "T01", description
            )
            await alipay.pay(call)
        else:
            qr = QrCall("1704093802", 1, "SP01", "T01", description, now, now + 120_000)
            await alipay.create_qr(qr)
        sent = orjson.loads(form(gateway.sent[-1])["biz_content"])["subject"]
        assert not set(sent) & set("/=&") and 0 < len(sent) <= 256
    assert (
        orjson.loads(form(gateway.sent[0])["biz_content"])["subject"] == "科目一／科目二＆补考＝1"
    )


class LoopbackDownloads(FakeGateway):
    """The fake gateway's answers, but downloads go over HTTP (to a loopback server)."""

    async def download(self, url: str, *, timeout_s: float, redirects: int = 5) -> HttpAnswer:
        return await HttpClient.download(self, url, timeout_s=timeout_s, redirects=redirects)

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> HttpAnswer:
        if method == "GET":  # (the adapter used to fetch the bill so)
            return await HttpClient.request(self, method, target, timeout_s=timeout_s)
        return await super().request(method, target, body=body, headers=headers)


async def test_the_bill_url_is_fetched_byte_for_byte_and_its_redirect_followed(
    keys: Keys,
) -> None:
    """Real bill URLs carry fileId=%2Ftrade%2F… and a token; the HTTP library used to send
    fileId=/trade/… and not follow a redirect."""
    query = (
        "bizType=trade&userId=20885318916687390156&fileType=csv.zip&bizDates=20190916"
        "&downloadFileName=20885318916687390156_20190916.csv.zip"
        "&fileId=%2Ftrade%2F20885318916687390156%2F20190916.csv.zip&timestamp=1568700000"
        "&token=a%2Bb%3D"
    )
    seen: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        # (web.HTTPFound would re-quote the Location itself)
        return web.Response(status=302, headers={"Location": f"/files/bill.zip?{query}"})

    async def file(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.Response(body=BILL_ZIP.read_bytes(), content_type="application/zip")

    app = web.Application()
    app.add_routes([web.get("/downloadBillFile.resource", moved), web.get("/files/bill.zip", file)])
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = f"http://127.0.0.1:{server.port}/downloadBillFile.resource?{query}"
    member = answer_text({"code": "10000", "msg": "Success", "bill_download_url": url})
    name = "alipay_data_dataservice_bill_downloadurl_query_response"
    text = f'{{"{name}":{member},"sign":"{sign(keys.alipay, member.encode())}"}}'
    gateway = LoopbackDownloads({"alipay.data.dataservice.bill.downloadurl.query": [text]})
    try:
        bill = await adapter(gateway, keys.alipay.public_key(), keys.app).bill(date(2019, 9, 16))
    finally:
        await gateway.close()
        await server.close()
    assert bill == BILL_ZIP.read_bytes()
    assert seen == [f"/downloadBillFile.resource?{query}", f"/files/bill.zip?{query}"]


@pytest.mark.parametrize(
    ("location", "refused"),
    [("ftp://127.0.0.1/bill.zip", "not an http"), ("/loop", "more than 5 times")],
)
async def test_a_download_redirected_elsewhere_than_http_or_in_a_loop_is_unknown(
    location: str, refused: str
) -> None:
    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": location})

    app = web.Application()
    app.add_routes([web.get("/loop", moved), web.get("/start", moved)])
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = HttpClient(f"http://127.0.0.1:{server.port}")
    try:
        with pytest.raises(OutcomeUnknown, match=refused):
            await client.download(f"http://127.0.0.1:{server.port}/start", timeout_s=5)
    finally:
        await client.close()
        await server.close()

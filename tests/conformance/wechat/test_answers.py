"""Every published answer sample, as WeChat Pay would send it (signed by wechatpayv3 as
the platform), through windowpay's adapter: each one parses and means what the documents
say it means. The samples and their sources: tests/fixtures/wire/wechat/SOURCES.md."""

from __future__ import annotations

import json
import time

import pytest

from orchestrator.channels.wechat.outcomes import NEVER_CREATED_AFTER_S
from orchestrator.providers.port import (
    AnswerMismatch,
    OutcomeUnknown,
    PayCall,
    ProviderRejected,
    ProviderUnavailable,
    RefundCall,
    RefundStatus,
    ReverseStatus,
    TradeRef,
    TradeStatus,
)
from tests.conformance.wechat.conftest import Gateway, adapter_for, error_sample, sample

NO = "1217752501201407033233368018"  # the documents' trade and refund number
TRADE = TradeRef(NO, 100, 0)
PAY = PayCall(NO, "130061098828009406", 100, "1234", "POS1:1", "Image形象店-深圳腾大-QQ公仔")


def with_state(name: str, state: str) -> bytes:
    """A query sample whose trade_state is `state` (the other fields as published)."""
    answer = json.loads(sample(name))
    answer["trade_state"] = state
    return json.dumps(answer, ensure_ascii=False).encode()


# ---- codepay (付款码支付) -------------------------------------------------------------


async def test_a_paid_code_payment(gateway: Gateway) -> None:
    gateway.answer(200, sample("answers/codepay_paid.json"))
    answer = await adapter_for(gateway).pay(PAY)
    assert (answer.status, answer.trade_no) == (TradeStatus.PAID, NO)
    [sent] = gateway.sent
    assert (sent.method, sent.target) == ("POST", "/v3/pay/transactions/codepay")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (202, sample("answers/codepay_userpaying.json")),  # the 202 that names no trade
        error_sample("USERPAYING"),  # the same as an error answer
    ],
)
async def test_the_payer_still_typing_is_confirming(
    gateway: Gateway, status: int, body: bytes
) -> None:
    gateway.answer(status, body)
    answer = await adapter_for(gateway).pay(PAY)
    assert (answer.status, answer.reason) == (TradeStatus.CONFIRMING, "USERPAYING")


@pytest.mark.parametrize(
    ("code", "raised"),
    [
        ("SYSTEM_ERROR", OutcomeUnknown),  # "try again": the payment may have happened
        ("PARAM_ERROR", ProviderRejected),
        ("ORDERPAID", ProviderRejected),  # no decline: the engine's query decides
        ("SIGN_ERROR", ProviderRejected),
        ("FREQUENCY_LIMITED", ProviderUnavailable),
    ],
)
async def test_code_payment_errors_are_no_outcome(
    gateway: Gateway, code: str, raised: type[Exception]
) -> None:
    gateway.answer(*error_sample(code))
    with pytest.raises(raised, match=code):
        await adapter_for(gateway).pay(PAY)


async def test_a_closed_trade_number_is_closed(gateway: Gateway) -> None:
    gateway.answer(*error_sample("ORDER_CLOSED"))
    assert (await adapter_for(gateway).pay(PAY)).status is TradeStatus.CLOSED


# ---- query ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "means"),
    [
        ("SUCCESS", TradeStatus.PAID),
        ("REFUND", TradeStatus.PAID),  # paid, then (partly) refunded
        ("NOTPAY", TradeStatus.CONFIRMING),
        ("USERPAYING", TradeStatus.CONFIRMING),
        ("PAYERROR", TradeStatus.DECLINED),
        ("CLOSED", TradeStatus.CLOSED),
        ("REVOKED", TradeStatus.CLOSED),
    ],
)
async def test_every_documented_trade_state(
    gateway: Gateway, state: str, means: TradeStatus
) -> None:
    gateway.answer(200, with_state("answers/query_paid.json", state))
    answer = await adapter_for(gateway).query(TRADE)
    assert (answer.status, answer.reason) == (means, state)
    [sent] = gateway.sent
    assert sent.target == f"/v3/pay/transactions/out-trade-no/{NO}?mchid=1230000109"


async def test_an_unpaid_native_trade_is_confirming(gateway: Gateway) -> None:
    gateway.answer(200, sample("answers/query_notpay.json"))
    assert (await adapter_for(gateway).query(TRADE)).status is TradeStatus.CONFIRMING


async def test_no_such_trade(gateway: Gateway) -> None:
    gateway.answer(*error_sample("ORDER_NOT_EXIST"))
    assert (await adapter_for(gateway).query(TRADE)).status is TradeStatus.NOT_FOUND


@pytest.mark.parametrize(
    "other",
    [TradeRef("X" + NO[1:], 100, 0), TradeRef(NO, 101, 0)],
    ids=["another trade number", "another amount"],
)
async def test_an_answer_about_another_trade_is_no_answer(
    gateway: Gateway, other: TradeRef
) -> None:
    gateway.answer(200, sample("answers/query_paid.json"))
    with pytest.raises(AnswerMismatch):
        await adapter_for(gateway).query(other)


async def test_an_answer_carrying_wechat_pays_signature_probe_is_no_answer(
    gateway: Gateway,
) -> None:
    gateway.answer(200, sample("answers/query_paid.json"))
    gateway.extra_headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/ZmFrZQ=="
    with pytest.raises(OutcomeUnknown, match="signature probe"):
        await adapter_for(gateway).query(TRADE)


async def test_an_answer_for_another_merchant_is_no_answer(gateway: Gateway) -> None:
    gateway.answer(200, sample("answers/query_paid.json").replace(b"1230000109", b"1230000999"))
    with pytest.raises(AnswerMismatch, match="mchid"):
        await adapter_for(gateway).query(TRADE)


@pytest.mark.parametrize(
    ("partner", "takes"),
    [({"sub_mchid": "1900000109"}, True), ({"sub_mchid": "1900000999"}, False), ({}, False)],
    ids=["its sub-merchant", "another sub-merchant", "a direct merchant"],
)
async def test_a_partners_answer_names_the_partner_and_the_sub_merchant(
    gateway: Gateway, partner: dict[str, str], takes: bool
) -> None:
    gateway.answer(200, sample("answers/query_partner_paid.json"))
    adapter = adapter_for(gateway, **partner)
    if takes:
        assert (await adapter.query(TRADE)).status is TradeStatus.PAID
    else:
        with pytest.raises(AnswerMismatch, match="mchid"):
            await adapter.query(TRADE)


# ---- reverse (撤销) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"), [(200, sample("answers/reverse_done.json")), (204, b"")]
)
async def test_a_reverse_is_done_on_its_documented_answers(
    gateway: Gateway, status: int, body: bytes
) -> None:
    """The 200 of the current document, and the 204 of the global edition: neither has a
    `recall`, which windowpay used to need to call a reverse done."""
    gateway.answer(status, body)
    answer = await adapter_for(gateway).reverse(TRADE)
    assert answer.status is ReverseStatus.DONE
    [sent] = gateway.sent
    assert sent.target == f"/v3/pay/transactions/out-trade-no/{NO}/reverse"
    assert sent.json == json.loads(sample("requests/reverse.json"))


async def test_a_reverse_answer_naming_another_trade_is_no_answer(gateway: Gateway) -> None:
    gateway.answer(200, sample("answers/reverse_done.json"))
    with pytest.raises(AnswerMismatch):
        await adapter_for(gateway).reverse(TradeRef("X" + NO[1:], 100, 0))


@pytest.mark.parametrize("code", ["SYSTEM_ERROR", "USERPAYING", "ORDER_NOT_EXIST"])
async def test_a_reverse_is_tried_again_on_the_documented_codes(
    gateway: Gateway, code: str
) -> None:
    """ORDER_NOT_EXIST included, while the pay call may still create the trade (here its
    time is unknown): it is no "nothing to undo" yet (docs/PROVIDERS.md)."""
    gateway.answer(*error_sample(code))
    answer = await adapter_for(gateway).reverse(TRADE)
    assert (answer.status, answer.reason) == (ReverseStatus.RETRY, code)


def paid_seconds_ago(seconds: float) -> TradeRef:
    return TradeRef(NO, 100, int((time.time() - seconds) * 1000))


async def test_order_not_exist_is_not_yet_while_the_payment_code_may_be_taken(
    gateway: Gateway,
) -> None:
    gateway.answer(*error_sample("ORDER_NOT_EXIST"))
    answer = await adapter_for(gateway).reverse(paid_seconds_ago(NEVER_CREATED_AFTER_S - 5))
    assert (answer.status, answer.reason) == (ReverseStatus.RETRY, "ORDER_NOT_EXIST")
    assert len(gateway.sent) == 1  # no query: nothing can be concluded yet


async def test_order_not_exist_after_the_payment_code_died_and_no_trade_is_done(
    gateway: Gateway,
) -> None:
    """The 6666 case: the pay call got an unsigned 5xx and WeChat never created the trade.
    Once its payment code is dead (valid one minute) and the query also finds no trade,
    the reverse is done: the window used to stay held until the reversal was given up
    (reverse_give_up_after_s, 10 minutes), the attempt then FAILED."""
    gateway.answer(*error_sample("ORDER_NOT_EXIST"))  # the reverse
    gateway.answer(*error_sample("ORDER_NOT_EXIST"))  # the query that confirms it
    answer = await adapter_for(gateway).reverse(paid_seconds_ago(NEVER_CREATED_AFTER_S + 1))
    assert answer.status is ReverseStatus.DONE
    reverse, query = gateway.sent
    assert (reverse.method, query.method) == ("POST", "GET")
    assert query.target == f"/v3/pay/transactions/out-trade-no/{NO}?mchid=1230000109"


@pytest.mark.parametrize(
    "query",
    [(200, with_state("answers/query_paid.json", "USERPAYING")), error_sample("SYSTEM_ERROR")],
    ids=["the query finds the trade", "the query has no answer"],
)
async def test_order_not_exist_that_the_query_does_not_confirm_is_tried_again(
    gateway: Gateway, query: tuple[int, bytes]
) -> None:
    gateway.answer(*error_sample("ORDER_NOT_EXIST"))
    gateway.answer(*query)
    answer = await adapter_for(gateway).reverse(paid_seconds_ago(NEVER_CREATED_AFTER_S + 1))
    assert answer.status is ReverseStatus.RETRY


async def test_a_reverse_refused_otherwise_is_no_answer(gateway: Gateway) -> None:
    gateway.answer(*error_sample("PARAM_ERROR"))
    with pytest.raises(ProviderRejected):
        await adapter_for(gateway).reverse(TRADE)


# ---- Native and close ---------------------------------------------------------------------


async def test_close_answers(gateway: Gateway) -> None:
    adapter = adapter_for(gateway)
    expected = [
        ((204, b""), ReverseStatus.DONE),
        (error_sample("ORDER_CLOSED"), ReverseStatus.DONE),
        (error_sample("ORDERPAID"), ReverseStatus.PAID),
        (error_sample("USERPAYING"), ReverseStatus.RETRY),
        (error_sample("SYSTEM_ERROR"), ReverseStatus.RETRY),
    ]
    for answer, means in expected:
        gateway.answer(*answer)
        assert (await adapter.close(TRADE)).status is means, answer
    assert {sent.json["mchid"] for sent in gateway.sent} == {"1230000109"}
    assert {sent.target for sent in gateway.sent} == {
        f"/v3/pay/transactions/out-trade-no/{NO}/close"
    }


# ---- refunds ------------------------------------------------------------------------------

REFUND = RefundCall(TradeRef(NO, 100, 0), NO, 100, 0)


async def test_a_refund_and_its_query(gateway: Gateway) -> None:
    adapter = adapter_for(gateway)
    for operation in (adapter.refund, adapter.refund_query):
        gateway.answer(200, sample("answers/refund_success.json"))
        answer = await operation(REFUND)
        assert (answer.status, answer.refund_no) == (
            RefundStatus.SUCCEEDED,
            "50000000382019052709732678859",
        )
    assert [(s.method, s.target) for s in gateway.sent] == [
        ("POST", "/v3/refund/domestic/refunds"),
        ("GET", f"/v3/refund/domestic/refunds/{NO}"),
    ]


@pytest.mark.parametrize("status", ["PROCESSING", "ABNORMAL", "CLOSED"])
async def test_every_documented_refund_status(gateway: Gateway, status: str) -> None:
    body = json.loads(sample("answers/refund_success.json"))
    body["status"] = status
    gateway.answer(200, json.dumps(body, ensure_ascii=False).encode())
    answer = await adapter_for(gateway).refund_query(REFUND)
    means = {"PROCESSING": RefundStatus.PENDING, "ABNORMAL": RefundStatus.PENDING}
    assert answer.status is means.get(status, RefundStatus.FAILED)


@pytest.mark.parametrize(
    "code", ["INVALID_REQUEST", "NOT_ENOUGH", "PARAM_ERROR", "RESOURCE_NOT_EXISTS"]
)
async def test_a_refund_refused_with_a_business_error_is_final(gateway: Gateway, code: str) -> None:
    """Refused (for instance more than is refundable), and the refund's query finds no
    refund under its number: FAILED, the amount released. It used to stay PENDING and be
    sent and asked again for ever."""
    gateway.answer(*error_sample(code))
    gateway.answer(*error_sample("RESOURCE_NOT_EXISTS"))  # the refund query
    answer = await adapter_for(gateway).refund(REFUND)
    assert (answer.status, answer.reason) == (RefundStatus.FAILED, code)


async def test_a_refusal_of_a_refund_that_exists_after_all_is_not_final(
    gateway: Gateway,
) -> None:
    """An earlier send went through: the refund's own query tells its state."""
    gateway.answer(*error_sample("INVALID_REQUEST"))
    gateway.answer(200, sample("answers/refund_success.json"))
    assert (await adapter_for(gateway).refund(REFUND)).status is RefundStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("code", "raised"),
    [
        ("SYSTEM_ERROR", OutcomeUnknown),
        ("FREQUENCY_LIMITED", ProviderUnavailable),
        ("SIGN_ERROR", ProviderRejected),
    ],
)
async def test_a_refund_without_a_business_answer_is_asked_again(
    gateway: Gateway, code: str, raised: type[Exception]
) -> None:
    gateway.answer(*error_sample(code))
    with pytest.raises(raised):
        await adapter_for(gateway).refund(REFUND)


@pytest.mark.parametrize(("status", "code"), [(403, "FREQUENCY_LIMITED"), (400, "SYSTEM_ERROR")])
async def test_a_try_again_code_is_no_refusal_whatever_its_status(
    gateway: Gateway, status: int, code: str
) -> None:
    """申请退款 (服务商): on "频率限制" retry later with the same parameters and the same
    refund number. Answered with a 4xx other than 429, it used to be taken as a refusal
    and end the refund FAILED once the query found nothing (the amount released)."""
    gateway.answer(status, json.dumps({"code": code, "message": "频率限制"}).encode())
    gateway.answer(*error_sample("RESOURCE_NOT_EXISTS"))  # a query, were one asked
    with pytest.raises((ProviderUnavailable, OutcomeUnknown)):
        await adapter_for(gateway).refund(REFUND)
    assert len(gateway.sent) == 1


async def test_no_such_refund(gateway: Gateway) -> None:
    gateway.answer(*error_sample("RESOURCE_NOT_EXISTS"))
    assert (await adapter_for(gateway).refund_query(REFUND)).status is RefundStatus.NOT_FOUND

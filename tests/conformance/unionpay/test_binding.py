"""An answer counts only for the transaction asked. UnionPay signs every answer it gives,
so a validly signed answer can still be about another transaction: another order's
decline, a refund refused under another number, the query's "no such transaction" or
the sale's own "paid" where a reversal was asked. Such an answer must decide nothing
(docs/DOMAIN.md, the 1313 case: the mismatch ignored, the query decides)."""

from __future__ import annotations

import time

import pytest

from orchestrator.providers.port import (
    AnswerMismatch,
    PayCall,
    RefundCall,
    RefundStatus,
    TradeRef,
)
from tests.conformance.unionpay.conftest import AdapterFactory, Running
from tests.conformance.unionpay.test_samples import (
    OLDER_MER_ID,
    adapter_answering,
    at_ms,
    sample_keys,
)
from tests.support import provider_id

CARD_CODE = "6225880000000000000"
ELSEWHERE = "P0000000000000000000099"  # an orderId windowpay did not ask about


def sale(amount_fen: int = 100) -> PayCall:
    now_ms = int(time.time() * 1000)
    return PayCall(provider_id(), CARD_CODE, amount_fen, "SP01", "T01", "x", now_ms)


@pytest.mark.parametrize(("named", "other"), [("orderId", ELSEWHERE), ("merId", OLDER_MER_ID)])
async def test_a_decline_of_another_order_declines_nothing(
    counterpart: Running, adapter_for: AdapterFactory, named: str, other: str
) -> None:
    """Fails on the code that bound only an accepted sale's answer: a signed 61 naming
    another orderId or merchant ended the attempt DECLINED, although this sale may have
    been paid."""
    call = sale()
    counterpart.gateway.script["01/06"] = lambda _f: "shape_sale_unclear.txt"
    counterpart.gateway.overrides[call.out_trade_no] = {"respCode": "61", named: other}
    with pytest.raises(AnswerMismatch, match=named):
        await adapter_for(counterpart.base_url).pay(call)


@pytest.mark.parametrize("sample", ["answer_query_paid.txt", "shape_query_not_found.txt"])
async def test_a_sale_or_query_answer_is_no_reversal(
    counterpart: Running, adapter_for: AdapterFactory, sample: str
) -> None:
    """Fails on the code whose reversal took any signed 00 or 34 naming the orderId: the
    query's "paid" (txnType 01) was read as "reversal done", and a paid sale ended
    REVERSED; the query's "no such transaction" (txnType 00) as "nothing to undo"."""
    call = sale(1)
    counterpart.gateway.script["99/01"] = lambda _f: sample
    with pytest.raises(AnswerMismatch, match="txnType"):
        await adapter_for(counterpart.base_url).reverse(call.trade)


async def test_a_refusal_of_another_refund_refuses_nothing(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    """Fails on the code that took a signed 35 under another orderId as this refund's
    final refusal (FAILED, the amount released) although it may have been refunded."""
    call = sale()
    paid = TradeRef(call.out_trade_no, 100, call.at_ms, "201702241035454938048")
    refund = RefundCall(paid, provider_id("R"), 40, call.at_ms)
    counterpart.gateway.script["04/00"] = lambda _f: "answer_refund.txt"
    counterpart.gateway.overrides[refund.out_refund_no] = {"respCode": "35", "orderId": ELSEWHERE}
    adapter = adapter_for(counterpart.base_url)
    with pytest.raises(AnswerMismatch, match="orderId"):
        await adapter.refund(refund)
    counterpart.gateway.overrides[refund.out_refund_no] = {"respCode": "35"}
    assert (await adapter.refund(refund)).status is RefundStatus.FAILED


async def test_a_signed_34_about_another_order_is_not_this_ones() -> None:
    """UnionPay's own signed 34 names the orderId asked; asked about another orderId it
    says nothing. Fails on the code that took any signed 34 as NOT_FOUND."""
    keys = sample_keys(signer_name="00040000:SIGN")
    adapter = adapter_answering("answer_query_not_found.txt", "20180614041856", keys, OLDER_MER_ID)
    with pytest.raises(AnswerMismatch, match="orderId"):
        await adapter.query(TradeRef("20180614000001", 1, at_ms("20180614041856")))
    refund = RefundCall(TradeRef("20180614000001", 1, 0, "q"), "20180614000002", 1, 0)
    with pytest.raises(AnswerMismatch, match="orderId"):
        await adapter.refund_query(refund)

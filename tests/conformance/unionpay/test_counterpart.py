"""windowpay's UnionPay adapter against the test-only ACP counterpart (acp.py), which
answers raw, without certId, in the public samples' own field sets, and checks each
request as the gateway does."""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime

import pytest

from orchestrator.channels.unionpay import adapter as unionpay
from orchestrator.channels.unionpay.adapter import txn_time
from orchestrator.channels.unionpay.bill import parse_unionpay
from orchestrator.domain.states import AttemptEvent, AttemptState, Channel, OrderState
from orchestrator.providers.engine import AttemptDriver, SystemClock, Ticket
from orchestrator.providers.port import (
    OutcomeUnknown,
    PayCall,
    QrCall,
    RefundCall,
    RefundStatus,
    ReverseStatus,
    TradeRef,
    TradeStatus,
)
from tests.conformance.unionpay.acp import read_raw, sample_text
from tests.conformance.unionpay.conftest import AdapterFactory, Running
from tests.support import Recorded, provider_id, small_config

SALE, QUERY, QR = "01/06", "00/00", "01/07"
CARD_CODE = "6225880000000000000"


def answers(counterpart: Running, **script: str) -> None:
    """Answer each txnType/txnSubType with the named sample."""
    for kind, sample in script.items():
        counterpart.gateway.script[kind.replace("_", "/")] = lambda _f, s=sample: s


def kinds(counterpart: Running) -> list[str]:
    return [f"{r['txnType']}/{r['txnSubType']}" for r in counterpart.gateway.received]


async def test_a_card_payment_ends_paid_once_with_nothing_reversed(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    """Through the engine, against a gateway answering exactly as the public samples:
    00 to the sale ("accepted"), then the query's origRespCode 00. Fails on the code that
    URL-decoded answers and demanded a certId: every answer was unknown and the sale
    was reversed (冲正)."""
    answers(counterpart, **{"01_06": "shape_sale_accepted.txt", "00_00": "answer_query_paid.txt"})
    adapter = adapter_for(counterpart.base_url)
    clock = SystemClock()
    recorded = Recorded(clock)
    attempt_id = recorded.start(Channel.UNIONPAY)
    playbook = small_config(time_scale=0.02).playbook(Channel.UNIONPAY)
    driver = AttemptDriver(adapter, playbook, clock, recorded)
    pay = PayCall(attempt_id, CARD_CODE, 8000, "SP01", "T01", "科目一", clock.now_ms())
    ticket = Ticket(attempt_id, AttemptState.SUBMITTED, pay.at_ms, pay, 8000)
    await asyncio.wait_for(driver.run(ticket), timeout=30)
    attempt = recorded.order.attempts[-1]
    assert (recorded.order.state, attempt.state) == (OrderState.PAID, AttemptState.SUCCEEDED)
    assert recorded.events.count(AttemptEvent.PAID) == 1, recorded.events
    assert attempt.provider_trade_no == "442401051450467846498"  # the sample's queryId
    assert "99/01" not in kinds(counterpart) and kinds(counterpart)[0] == SALE
    assert counterpart.gateway.refused == []


async def test_every_request_is_a_signed_form_without_blanks(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    answers(
        counterpart,
        **{"01_06": "shape_sale_accepted.txt", "00_00": "answer_query_paid.txt",
           "31_00": "answer_void.txt", "04_00": "answer_refund.txt"},
    )  # fmt: skip
    adapter = adapter_for(counterpart.base_url)
    sale = PayCall(provider_id(), CARD_CODE, 100, "", "", "科目一", int(time.time() * 1000))
    assert (await adapter.pay(sale)).status is TradeStatus.CONFIRMING
    paid = await adapter.query(sale.trade)
    trade = TradeRef(sale.out_trade_no, 100, sale.at_ms, paid.trade_no)
    refund = await adapter.refund(RefundCall(trade, provider_id("R"), 40, sale.at_ms))
    assert refund.status is RefundStatus.PENDING
    assert counterpart.gateway.refused == []
    first = counterpart.gateway.received[0]
    assert "termId" not in first and "reqReserved" not in first  # blank: not sent
    assert first["qrNo"] == CARD_CODE and first["certId"]


def seconds_up(ms: int) -> int:
    """payTimeout is written to the second: the code's end, rounded up."""
    return -(-ms // 1000) * 1000


def qr_call(at_ms: int, life_ms: int = 60_000) -> QrCall:
    return QrCall(provider_id("Q"), 500, "SP01", "T01", "科目一", at_ms, at_ms + life_ms)


async def test_a_qr_code_is_asked_with_its_pay_timeout(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    answers(counterpart, **{"01_07": "shape_apply_qr.txt"})
    now_ms = int(time.time() * 1000)
    adapter = adapter_for(counterpart.base_url)
    code = await adapter.create_qr(qr_call(now_ms))
    assert code.code_url.startswith("https://qr.95516.com/")
    [sent] = counterpart.gateway.received
    assert sent["payTimeout"] == txn_time(seconds_up(now_ms + 60_000))
    long_lived = await adapter.create_qr(qr_call(now_ms, life_ms=3_600_000))
    assert long_lived.code_url
    longest = txn_time(seconds_up(now_ms + unionpay.MAX_CODE_LIFE_MS))
    assert counterpart.gateway.received[1]["payTimeout"] == longest


async def test_a_qr_close_waits_for_the_pay_timeout_and_sends_no_reversal(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    """ACP documents 冲正 for payer-presented sales only: the close of a 申码 code sends
    none; it asks the order, and before payTimeout an unpaid one is RETRY. Fails on the
    code whose close was a 冲正."""
    answers(counterpart, **{"01_07": "shape_apply_qr.txt", "00_00": "shape_query_accepted.txt"})
    now_ms = int(time.time() * 1000)
    moment = [now_ms / 1000]
    adapter = adapter_for(counterpart.base_url, clock=lambda: moment[0])
    call = qr_call(now_ms)
    await adapter.create_qr(call)
    assert (await adapter.close(call.trade)).status is ReverseStatus.RETRY
    assert kinds(counterpart) == [QR, QUERY]
    moment[0] = (call.expires_at_ms + 1000) / 1000
    closed = await adapter.close(call.trade)
    assert closed.status is ReverseStatus.DONE, closed
    assert kinds(counterpart) == [QR, QUERY, QUERY]


async def test_a_code_paid_before_its_pay_timeout_is_paid_not_closed(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    answers(counterpart, **{"01_07": "shape_apply_qr.txt", "00_00": "answer_query_paid.txt"})
    now_ms = int(time.time() * 1000)
    moment = [now_ms / 1000 + 61]
    adapter = adapter_for(counterpart.base_url, clock=lambda: moment[0])
    call = qr_call(now_ms)
    await adapter.create_qr(call)
    assert (await adapter.close(call.trade)).status is ReverseStatus.PAID


async def test_a_code_never_made_is_closed_once_its_longest_life_is_over(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    """After a restart the adapter no longer knows the payTimeout it sent: it waits out
    the longest it ever sends, then a query that finds nothing closes it."""
    answers(counterpart, **{"00_00": "shape_query_not_found.txt"})
    now_ms = int(time.time() * 1000)
    moment = [now_ms / 1000 + 61]
    adapter = adapter_for(counterpart.base_url, clock=lambda: moment[0])
    trade = TradeRef(provider_id("Q"), 500, now_ms)
    assert (await adapter.close(trade)).status is ReverseStatus.RETRY
    moment[0] = (now_ms + unionpay.MAX_CODE_LIFE_MS + 1000) / 1000
    assert (await adapter.close(trade)).status is ReverseStatus.DONE


async def test_the_settlement_file_is_inflated_and_read(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    """fileContent is base64 of a deflated zip. Fails on the code that only base64-decoded
    it and then looked for H|/D|/T| lines."""
    answers(counterpart, **{"76_01": "shape_file.txt"})
    adapter = adapter_for(counterpart.base_url)
    content = await adapter.bill(date(2015, 9, 5))
    rows = parse_unionpay(content)
    assert len(rows) == 8 and sum(r.amount_fen for r in rows) == 1_322_700
    [sent] = counterpart.gateway.received
    assert (sent["settleDate"], sent["fileType"]) == ("0905", "00")


async def test_an_unclear_sale_answer_leaves_the_outcome_unknown(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    answers(counterpart, **{"01_06": "shape_sale_unclear.txt"})
    adapter = adapter_for(counterpart.base_url)
    sale = PayCall(provider_id(), CARD_CODE, 100, "SP01", "T01", "科目一", int(time.time() * 1000))
    with pytest.raises(OutcomeUnknown, match="03"):
        await adapter.pay(sale)


async def test_a_failed_try_at_an_open_code_does_not_close_it(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    """ACP has no close of a 申码 order: until its payTimeout the code stays payable,
    whatever a failed try left in origRespCode (01). Fails on the code that read 01 as
    CLOSED at any time, which ends the attempt while the payer can still pay the code."""
    answers(counterpart, **{"01_07": "shape_apply_qr.txt", "00_00": "shape_query_accepted.txt"})
    now_ms = int(time.time() * 1000)
    moment = [now_ms / 1000]
    adapter = adapter_for(counterpart.base_url, clock=lambda: moment[0])
    call = qr_call(now_ms)
    counterpart.gateway.overrides[call.out_trade_no] = {"origRespCode": "01"}
    await adapter.create_qr(call)
    assert (await adapter.query(call.trade)).status is TradeStatus.DECLINED
    # After a restart the adapter knows the code by the answer's txnSubType 07.
    restarted = adapter_for(counterpart.base_url, clock=lambda: moment[0])
    assert (await restarted.query(call.trade)).status is TradeStatus.DECLINED
    moment[0] = (call.expires_at_ms + 1000) / 1000
    assert (await adapter.query(call.trade)).status is TradeStatus.CLOSED
    moment[0] = (now_ms + unionpay.MAX_CODE_LIFE_MS + 1000) / 1000
    assert (await restarted.query(call.trade)).status is TradeStatus.CLOSED


async def test_a_settlement_file_in_lines_of_base64_is_read(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    """The SDK decodes fileContent with commons-codec (the PHP demo with base64_decode),
    both of which skip line breaks; a MIME-style fileContent, 76 characters a line, is
    the same file. Fails on the code whose strict decoder refused it: unreconciled."""
    content = read_raw(sample_text("shape_file.txt"))["fileContent"]
    lines = "\r\n".join(content[i : i + 76] for i in range(0, len(content), 76))
    counterpart.gateway.script["76/01"] = lambda _f: "shape_file.txt"
    counterpart.gateway.overrides[""] = {"fileContent": lines}
    rows = parse_unionpay(await adapter_for(counterpart.base_url).bill(date(2015, 9, 5)))
    assert len(rows) == 8 and sum(r.amount_fen for r in rows) == 1_322_700


def beijing_ms(text: str) -> int:
    return int(
        datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=unionpay.BEIJING).timestamp() * 1000
    )


@pytest.mark.parametrize(
    ("sold", "refunded", "sent"),
    [
        ("20260105100000", "20260105180000", "31/00"),  # the same day: voided
        ("20260105230100", "20260105235900", "31/00"),  # both after 23:00: one day
        ("20260104100000", "20260105100000", "04/00"),  # the day before: refunded
        ("20260105225900", "20260105230100", "04/00"),  # across 23:00: refunded
    ],
)
async def test_a_whole_sale_is_voided_only_on_its_settlement_day(
    counterpart: Running, adapter_for: AdapterFactory, sold: str, refunded: str, sent: str
) -> None:
    """A void (撤销) is for a sale of the current settlement day, which UnionPay ends at
    23:00 Beijing time; later a sale is refunded (退货). Fails on the code that always
    sent the void first, whatever the day: an answer to a void out of its day with a
    code outside the refusal list left the refund pending, and it was never sent."""
    answers(counterpart, **{"31_00": "answer_void.txt", "04_00": "answer_refund.txt"})
    trade = TradeRef(provider_id(), 500, beijing_ms(sold), "201702241035454938048")
    call = RefundCall(trade, provider_id("R"), 500, beijing_ms(refunded))
    assert (await adapter_for(counterpart.base_url).refund(call)).status is RefundStatus.PENDING
    assert kinds(counterpart) == [sent]


async def test_the_pay_timeouts_of_codes_long_over_are_forgotten(
    counterpart: Running, adapter_for: AdapterFactory
) -> None:
    """The adapter remembers each 申码 code's payTimeout for its close; a code paid
    while open is never closed. Fails on the code that kept every one for the life of
    the process (a few hundred bytes per QR payment, never freed)."""
    answers(counterpart, **{"01_07": "shape_apply_qr.txt"})
    now_ms = int(time.time() * 1000)
    moment = [now_ms / 1000]
    adapter = adapter_for(counterpart.base_url, clock=lambda: moment[0])
    first = qr_call(now_ms)
    await adapter.create_qr(first)
    moment[0] += 2 * unionpay.MAX_CODE_LIFE_MS / 1000
    second = qr_call(int(moment[0] * 1000))
    await adapter.create_qr(second)  # the first code's end is not long enough ago yet
    assert set(adapter._pay_timeouts) == {first.out_trade_no, second.out_trade_no}
    moment[0] += 2 * unionpay.MAX_CODE_LIFE_MS / 1000
    third = qr_call(int(moment[0] * 1000))
    await adapter.create_qr(third)
    assert set(adapter._pay_timeouts) == {second.out_trade_no, third.out_trade_no}

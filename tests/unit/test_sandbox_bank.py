import pytest

from orchestrator.sandbox.bank import RefundState, Reply, SandboxBank, Timing, TradeState

FAST = Timing(time_scale=0.001)


async def test_each_behaviour_of_the_pay_call() -> None:
    bank = SandboxBank("WECHAT", FAST)
    told = {}
    for ending in ["0000", "1111", "2222", "3333", "4444", "6666", "7777", "8888", "9999"]:
        reply = await bank.pay(f"o{ending}", f"13000000000000{ending}", 100, "SP01")
        told[ending] = (reply.reply, reply.told)
    assert told == {
        "0000": (Reply.OK, TradeState.SUCCESS),
        "1111": (Reply.OK, TradeState.USERPAYING),
        "2222": (Reply.OK, TradeState.USERPAYING),
        "3333": (Reply.OK, TradeState.PAYERROR),
        "4444": (Reply.SYSTEM_ERROR, None),
        "6666": (Reply.UNAVAILABLE, None),
        "7777": (Reply.OK, TradeState.USERPAYING),
        "8888": (Reply.OK, TradeState.USERPAYING),
        "9999": (Reply.OK, TradeState.PAYERROR),
    }
    # What the ledger holds differs where the sandbox says so.
    ledger = {t.out_trade_no: t.state for t in bank.trades()}
    assert ledger["o4444"] is TradeState.SUCCESS
    assert ledger["o7777"] is TradeState.SUCCESS
    assert "o6666" not in ledger


async def test_a_hanging_pay_is_recorded_before_it_answers() -> None:
    bank = SandboxBank("ALIPAY", Timing(time_scale=0.001, hang_s=0.5 / 0.001))
    import asyncio

    task = asyncio.create_task(bank.pay("o1", "2800000000005555", 100, "SP01"))
    await asyncio.sleep(0.05)
    assert not task.done()
    trade = bank.trade("o1")
    assert trade is not None and trade.state is TradeState.SUCCESS
    task.cancel()


async def test_the_payer_confirms_after_a_while() -> None:
    bank = SandboxBank("WECHAT", Timing(time_scale=1.0, confirm_after_s=0.05))
    await bank.pay("o1", "130000000000001111", 100, "SP01")
    assert (await bank.query("o1")).trade.state is TradeState.USERPAYING  # type: ignore[union-attr]
    import asyncio

    await asyncio.sleep(0.06)
    assert (await bank.query("o1")).trade.state is TradeState.SUCCESS  # type: ignore[union-attr]


async def test_reversal() -> None:
    bank = SandboxBank("WECHAT", FAST)
    await bank.pay("paid", "130000000000010000", 100, "SP01")
    await bank.pay("waiting", "130000000000012222", 100, "SP01")
    await bank.pay("retry", "130000000000018888", 100, "SP01")
    assert (await bank.reverse("paid")).trade.state is TradeState.REVOKED  # type: ignore[union-attr]
    assert (await bank.reverse("waiting")).trade.state is TradeState.CLOSED  # type: ignore[union-attr]
    assert (await bank.reverse("retry")).reply is Reply.RETRY
    assert (await bank.reverse("retry")).trade.state is TradeState.CLOSED  # type: ignore[union-attr]
    closed = await bank.reverse("never-paid")
    assert closed.trade is not None and closed.trade.state is TradeState.CLOSED
    late = await bank.pay("never-paid", "130000000000020000", 100, "SP01")
    assert late.told is TradeState.CLOSED  # a closed trade number can never be paid


async def test_codes_are_single_use() -> None:
    bank = SandboxBank("WECHAT", FAST)
    await bank.pay("a", "130000000000030000", 100, "SP01")
    second = await bank.pay("b", "130000000000030000", 100, "SP01")
    assert second.told is TradeState.PAYERROR and second.reason == "AUTH_CODE_USED"


@pytest.mark.parametrize("amounts", [[60, 40], [100]])
async def test_refunds_never_exceed_the_payment(amounts: list[int]) -> None:
    bank = SandboxBank("WECHAT", FAST)
    await bank.pay("a", "130000000000040000", 100, "SP01")
    for i, amount in enumerate(amounts):
        assert (await bank.refund("a", f"r{i}", amount)).reply is Reply.OK
    assert (await bank.refund("a", "r-extra", 1)).reply is Reply.REFUSED
    again = await bank.refund("a", "r0", amounts[0])  # a resend answers the same
    assert again.reply is Reply.OK and again.refund is not None
    assert again.refund.amount_fen == amounts[0]


async def test_the_unclear_pay_answers_record_the_payment() -> None:
    bank = SandboxBank("ALIPAY", FAST)
    proxied = await bank.pay("o1212", "2800000000001212", 100, "SP01")
    assert proxied.reply is Reply.PROXY_ERROR  # an unsigned 503, though it was recorded
    again = await bank.pay("o1212", "2800000000001212", 100, "SP01")
    assert again.reply is Reply.ALREADY  # a resend: "already paid"
    other = await bank.pay("o1313", "2800000000001313", 100, "SP01")
    assert other.reply is Reply.OK and other.trade is not None
    assert other.trade.out_trade_no != "o1313" and other.trade.amount_fen != 100
    for no in ("o1212", "o1313"):
        trade = bank.trade(no)
        assert trade is not None and trade.state is TradeState.SUCCESS and trade.amount_fen == 100


async def test_the_refund_behaviours() -> None:
    import asyncio

    timing = Timing(time_scale=0.001, refund_processing_s=100.0, hang_s=100.0)
    bank = SandboxBank("WECHAT", timing)
    for ending in ("2323", "2424", "2525"):
        await bank.pay(f"o{ending}", f"13000000000000{ending}", 300, "SP01")
    slow = await bank.refund("o2323", "r1", 100)
    assert slow.refund is not None and slow.refund.state is RefundState.PROCESSING
    assert (await bank.refund_status("o2323", "r1")).refund.state is RefundState.PROCESSING  # type: ignore[union-attr]
    await asyncio.sleep(0.15)  # 100 s at this scale
    assert (await bank.refund_status("o2323", "r1")).refund.state is RefundState.SUCCESS  # type: ignore[union-attr]
    lost = asyncio.create_task(bank.refund("o2424", "r2", 100))
    await asyncio.sleep(0.02)
    assert not lost.done() and bank.refund_by_no("r2") is not None  # recorded, not answered
    assert (await bank.refund("o2424", "r2", 100)).reply is Reply.ALREADY
    await lost
    refused = await bank.refund("o2525", "r3", 100)
    assert refused.reply is Reply.REFUSED and refused.reason == "MERCHANT_BALANCE_LOW"
    assert (await bank.refund_status("o2525", "r3")).reply is Reply.NOT_FOUND

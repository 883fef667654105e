"""Partner mode (服务商) end to end: windowpay's adapter, configured with a sub-merchant,
against the sandbox's /v3/pay/partner/ paths (whose answers carry sp_mchid and sub_mchid,
which the adapter requires), and windowpay's listener taking the partner's notifications
only for its own sub-merchant. wechatpayv3 drives the same paths in test_sandbox_shape."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from orchestrator.channels.wechat.bill import parse_wechat
from orchestrator.channels.wechat.outcomes import NEVER_CREATED_AFTER_S
from orchestrator.channels.wechat.wiring import notifications
from orchestrator.config import Credentials
from orchestrator.domain.states import Channel
from orchestrator.providers.http import HttpClient
from orchestrator.providers.notices import NoticeRefused
from orchestrator.providers.port import (
    OutcomeUnknown,
    PayCall,
    QrCall,
    RefundCall,
    RefundStatus,
    ReverseStatus,
    TradeStatus,
)
from tests.conformance.wechat.conftest import Sandbox
from tests.support import code


@pytest.fixture
async def client(partner_sandbox: Sandbox) -> AsyncIterator[HttpClient]:
    http = HttpClient(partner_sandbox.url)
    yield http
    await http.close()


def no() -> str:
    return "P" + secrets.token_hex(10).upper()


def pay(out_trade_no: str, ending: str = "0000") -> PayCall:
    at_ms = int(time.time() * 1000)
    return PayCall(out_trade_no, code(Channel.WECHAT, ending), 8000, "SP01", "T01", "科目一", at_ms)


async def test_a_partners_payments_refunds_codes_and_bill(
    partner_sandbox: Sandbox, client: HttpClient
) -> None:
    adapter = partner_sandbox.adapter(client)
    paid = pay(no())
    assert (await adapter.pay(paid)).status is TradeStatus.PAID
    assert (await adapter.query(paid.trade)).status is TradeStatus.PAID
    refund = RefundCall(paid.trade, "R" + paid.out_trade_no, 3000, paid.at_ms)
    assert (await adapter.refund(refund)).status is RefundStatus.SUCCEEDED
    assert (await adapter.refund_query(refund)).status is RefundStatus.SUCCEEDED
    never = pay(no(), "2222")
    assert (await adapter.pay(never)).status is TradeStatus.CONFIRMING
    assert (await adapter.reverse(never.trade)).status is ReverseStatus.DONE
    expires = int(time.time() * 1000) + 60_000
    qr = QrCall(no(), 8000, "SP01", "T01", "科目一", paid.at_ms, expires)
    assert (await adapter.create_qr(qr)).code_url.startswith(partner_sandbox.url)
    assert (await adapter.close(qr.trade)).status is ReverseStatus.DONE
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    rows = parse_wechat(await adapter.bill(today))
    assert paid.out_trade_no in {row.out_trade_no for row in rows}


async def test_the_listener_takes_its_sub_merchants_notifications_only(
    partner_sandbox: Sandbox, client: HttpClient
) -> None:
    paid = await partner_sandbox.bank.pay(no(), code(Channel.WECHAT), 8000, "SP01")
    assert paid.trade is not None
    sent = partner_sandbox.gateway.notification(paid.trade, None)
    headers = {"Content-Type": sent.content_type, **sent.headers}
    settings = partner_sandbox.config.providers[Channel.WECHAT]
    listener = notifications(client, settings, partner_sandbox.keys_dir, 300.0)
    notice = await listener.verify(headers, sent.body)
    assert (notice.out_trade_no, notice.trade_status) == (paid.trade.out_trade_no, TradeStatus.PAID)
    names = dict(settings.credentials.names, sub_merchant_id="1900000999")
    stranger = replace(settings, credentials=Credentials(names))
    with pytest.raises(NoticeRefused, match="sub_mchid"):
        await notifications(client, stranger, partner_sandbox.keys_dir, 300.0).verify(
            headers, sent.body
        )


async def test_a_pay_that_never_reached_wechat_is_reversed_once_its_code_is_dead(
    partner_sandbox: Sandbox, client: HttpClient
) -> None:
    """6666: the pay call is answered by an unsigned 503 and WeChat records nothing. Its
    reverse answers ORDER_NOT_EXIST: "not yet" while the payment code lives, done after."""
    adapter = partner_sandbox.adapter(client)
    lost = pay(no(), "6666")
    with pytest.raises(OutcomeUnknown):
        await adapter.pay(lost)
    assert (await adapter.reverse(lost.trade)).status is ReverseStatus.RETRY
    older = replace(lost.trade, at_ms=lost.at_ms - int(NEVER_CREATED_AFTER_S * 1000))
    assert (await adapter.reverse(older)).status is ReverseStatus.DONE
    assert partner_sandbox.bank.trade(lost.out_trade_no) is None

"""The public notification samples through windowpay's Alipay verifier: Alipay's own
signatures verify and the notice means what the sample says; a refund notification's
refund_fee counts every refund of the trade so far."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

import pytest

from orchestrator.channels.alipay.adapter import BEIJING
from orchestrator.channels.alipay.notify import AlipayNotifications, signed_text
from orchestrator.domain.states import Channel
from orchestrator.providers.notices import Notice, NoticeRefused
from orchestrator.providers.port import OutcomeUnknown, RefundStatus, TradeStatus
from orchestrator.providers.signing import PublicKey, sign
from tests.conformance.alipay.conftest import (
    Keys,
    certificate_key,
    form,
    notification,
    public_key,
)

REFUNDS = {"1703141270R1": 30, "1703141270R2": 20}  # two partial refunds of a 1-yuan trade


def at(text: str) -> float:
    """A moment in Beijing time, a minute after a sample's notify_time."""
    sent = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    return sent.timestamp() + 60


async def refunds(out_trade_no: str, out_request_no: str) -> tuple[int, str, str] | None:
    """The refund query's answer for the samples' trade: each refund's own amount."""
    amount = REFUNDS.get(out_request_no)
    if out_trade_no != "1703141270" or amount is None:
        return None
    return amount, "REFUND_SUCCESS", "2023122122001499160501586202"


def verifier(key: PublicKey, app_id: str, notify_time: str) -> AlipayNotifications:
    return AlipayNotifications(key, app_id, 300, lambda: at(notify_time), refunds=refunds)


async def test_alipays_signed_notification_is_read() -> None:
    body = notification("trade_success_nodesdk")
    params = form(body)
    check = verifier(
        public_key("nodesdk_notify_v1_public.pem"), "2019073166072302", params["notify_time"]
    )
    assert await check.verify({}, body) == Notice(
        Channel.ALIPAY,
        "20190815155618536-564-57",
        "2019081522001468450512505578",
        10,
        TradeStatus.PAID,
    )


async def test_the_sandboxs_certificate_mode_notification_is_read_plus_sign_included() -> None:
    body = notification("trade_success_yansongda")
    params = form(body)
    assert params["subject"] == "yansongda+测试 - 1"  # a "+" that must not become a space
    key = certificate_key("yansongda_alipayPublicCert.crt")
    check = verifier(key, "9021000122682882", params["notify_time"])
    notice = await check.verify({}, body)
    assert (notice.out_trade_no, notice.amount_fen, notice.trade_status) == (
        "1703147160",
        1,
        TradeStatus.PAID,
    )


@pytest.mark.parametrize("sample", ["trade_success_nodesdk", "trade_success_yansongda"])
async def test_a_sample_changed_by_one_value_is_refused(sample: str) -> None:
    params = form(notification(sample))
    key = (
        public_key("nodesdk_notify_v1_public.pem")
        if sample.endswith("nodesdk")
        else certificate_key("yansongda_alipayPublicCert.crt")
    )
    check = verifier(key, params["app_id"], params["notify_time"])
    params["total_amount"] = "100.00"
    with pytest.raises(NoticeRefused, match="signature"):
        await check.verify({}, urlencode(params).encode())


def resigned_form(name: str, keys: Keys) -> bytes:
    params = form(notification(name))
    params["sign"] = sign(keys.alipay, signed_text(params))
    return urlencode(params).encode()


async def test_a_second_partial_refund_is_matched_against_the_refunds_so_far(
    keys: Keys,
) -> None:
    """refund_fee is all refunded of the trade: 0.30 after the first refund, 0.50 after
    the second. Each notice carries the refund's own amount (30, then 20 fen)."""
    first = resigned_form("refund_first_partial", keys)
    second = resigned_form("refund_second_partial", keys)
    check = verifier(keys.alipay.public_key(), "9021000122682882", "2023-12-22 14:25:11")
    told = [await check.verify({}, body) for body in (first, second)]
    assert [(n.out_refund_no, n.amount_fen, n.refund_status) for n in told] == [
        ("1703141270R1", 30, RefundStatus.SUCCEEDED),
        ("1703141270R2", 20, RefundStatus.SUCCEEDED),
    ]
    assert {n.out_trade_no for n in told} == {"1703141270"}


async def test_a_refund_fee_that_cannot_include_the_named_refund_is_refused(
    keys: Keys,
) -> None:
    params = form(notification("refund_second_partial"))
    params["refund_fee"] = "0.10"  # less than the 20 fen refund it names
    params["sign"] = sign(keys.alipay, signed_text(params))
    check = verifier(keys.alipay.public_key(), "9021000122682882", params["notify_time"])
    with pytest.raises(NoticeRefused, match="cannot include"):
        await check.verify({}, urlencode(params).encode())


async def test_a_refund_the_query_does_not_show_is_not_taken(keys: Keys) -> None:
    params = form(notification("refund_second_partial"))
    params["out_biz_no"] = "1703141270R9"  # no such refund at the gateway
    params["sign"] = sign(keys.alipay, signed_text(params))
    check = verifier(keys.alipay.public_key(), "9021000122682882", params["notify_time"])
    with pytest.raises(NoticeRefused, match="does not show"):
        await check.verify({}, urlencode(params).encode())


async def test_without_the_refund_query_refund_fee_stands_for_the_refund(keys: Keys) -> None:
    """The gateway's queries fail: a trade's only refund is still told right (its
    refund_fee is its amount); a later one names the refunds so far, which the service
    point then refuses as a mismatch, and Alipay sends it again."""

    async def unavailable(out_trade_no: str, out_request_no: str) -> None:
        raise OutcomeUnknown("alipay.trade.fastpay.refund.query answered HTTP 503")

    check = AlipayNotifications(
        keys.alipay.public_key(), "9021000122682882", 300,
        lambda: at("2023-12-22 14:25:11"), refunds=unavailable,
    )  # fmt: skip
    told = [
        await check.verify({}, resigned_form(name, keys))
        for name in ("refund_first_partial", "refund_second_partial")
    ]
    assert [(n.out_refund_no, n.amount_fen) for n in told] == [
        ("1703141270R1", 30),
        ("1703141270R2", 50),
    ]


@pytest.mark.parametrize(
    ("configured", "read"),
    [("", True), ("2088531891668739", True), ("2088000000000002", False)],
)
async def test_a_notification_for_another_seller_is_refused_when_the_pid_is_set(
    configured: str, read: bool
) -> None:
    """Alipay's notification page: seller_id must be the trade's seller. The sample is
    Alipay-signed, for the right app_id, from seller 2088531891668739."""
    body = notification("trade_success_nodesdk")
    params = form(body)
    check = AlipayNotifications(
        public_key("nodesdk_notify_v1_public.pem"),
        "2019073166072302",
        300,
        lambda: at(params["notify_time"]),
        refunds=refunds,
        seller_id=configured,
    )
    if read:
        assert (await check.verify({}, body)).out_trade_no == "20190815155618536-564-57"
    else:
        with pytest.raises(NoticeRefused, match="another seller_id"):
            await check.verify({}, body)

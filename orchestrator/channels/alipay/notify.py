"""Alipay asynchronous notifications (异步通知, notify_type trade_status_sync): a form
POST whose `sign` is RSA2 over the other parameters, sorted by name, empty ones and
`sign` and `sign_type` left out, verified with the Alipay public key.

A refund shows up as the trade's notification carrying out_biz_no (the refund's number),
refund_fee (all refunded of the trade) and send_back_fee (this refund's money).
notify_time, when the notification was sent, must be within the allowed skew. The answer
is the plain body `success`; anything else (windowpay answers `fail`) makes Alipay send
it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import parse_qsl

from aiohttp import web

from orchestrator.channels.alipay.adapter import BEIJING, TRADE_STATUS
from orchestrator.domain.money import from_yuan
from orchestrator.domain.states import Channel
from orchestrator.providers.notices import Notice, NoticeRefused
from orchestrator.providers.port import RefundStatus
from orchestrator.providers.signing import PublicKey, sorted_pairs, verify

NOT_SIGNED = frozenset({"sign", "sign_type"})
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def signed_text(params: Mapping[str, str]) -> bytes:
    return sorted_pairs(params, exclude=NOT_SIGNED).encode()


class AlipayNotifications:
    channel = Channel.ALIPAY

    def __init__(
        self,
        alipay_public: PublicKey,
        app_id: str,
        max_skew_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._public = alipay_public
        self._app_id = app_id
        self._max_skew_s = max_skew_s
        self._clock = clock

    async def verify(self, headers: Mapping[str, str], body: bytes) -> Notice:
        params = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        if not params.get("sign"):
            raise NoticeRefused("unsigned: no sign parameter")
        if params.get("sign_type") != "RSA2":
            raise NoticeRefused(f"sign_type {params.get('sign_type')!r} is not RSA2")
        if not verify(self._public, signed_text(params), params["sign"]):
            raise NoticeRefused("signature does not verify")
        if params.get("app_id") != self._app_id:
            raise NoticeRefused("notification for another app_id")
        try:
            sent = datetime.strptime(params.get("notify_time", ""), TIME_FORMAT)
        except ValueError:
            raise NoticeRefused("notify_time missing or malformed") from None
        if abs(self._clock() - sent.replace(tzinfo=BEIJING).timestamp()) > self._max_skew_s:
            raise NoticeRefused(f"notify_time {params['notify_time']} outside the allowed skew")
        try:
            return _notice(params)
        except (KeyError, ValueError):
            raise NoticeRefused("notification lacks a field it needs") from None

    def accepted(self) -> web.Response:
        return web.Response(text="success", content_type="text/plain")

    def refused(self, why: str) -> web.Response:
        return web.Response(text="fail", content_type="text/plain")


def _notice(params: dict[str, str]) -> Notice:
    out_trade_no, trade_no = params["out_trade_no"], params.get("trade_no", "")
    if params.get("out_biz_no") and params.get("refund_fee"):
        return Notice(
            Channel.ALIPAY,
            out_trade_no=out_trade_no,
            trade_no=trade_no,
            # send_back_fee: this refund's money; refund_fee: all refunded of the trade.
            amount_fen=from_yuan(params.get("send_back_fee") or params["refund_fee"]),
            out_refund_no=params["out_biz_no"],
            refund_no=params["out_biz_no"],
            refund_status=RefundStatus.SUCCEEDED,  # Alipay tells only refunds that happened
        )
    return Notice(
        Channel.ALIPAY,
        out_trade_no=out_trade_no,
        trade_no=trade_no,
        amount_fen=from_yuan(params["total_amount"]),
        trade_status=TRADE_STATUS[params["trade_status"]],
    )


def notification_params(fields: Mapping[str, str], now: float) -> dict[str, str]:
    """The unsigned parameters of a notification sent at `now` (the sandbox signs them)."""
    return {
        "notify_time": datetime.fromtimestamp(now, BEIJING).strftime(TIME_FORMAT),
        "notify_type": "trade_status_sync",
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        **fields,
    }

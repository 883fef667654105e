"""Alipay asynchronous notifications (异步通知, notify_type trade_status_sync): a form
POST whose `sign` is RSA2 over the other parameters, sorted by name, empty ones and
`sign` and `sign_type` left out, verified with Alipay's public key (or, in certificate
mode, the key of Alipay's certificate: notifications name none). It must name windowpay's
app_id, and, when [providers.ALIPAY] seller_id is set, that seller_id (the notification
page's verification steps; in certificate mode Alipay's certificate is one for all apps).

Alipay sends a notification again until it is answered with the plain body `success`
(windowpay answers `fail` otherwise), at 4 m, 10 m, 10 m, 1 h, 2 h, 6 h and 15 h, with
the same notify_id. So a notification is not refused for an old notify_time: one that
verifies is taken within RESEND_HORIZON_S, and its notify_id is remembered once it was
answered `success` (NotifyIds); the same notify_id again is answered `success` and not
read a second time (NoticeRepeated: the listener counts it a duplicate).

A refund shows up as the trade's notification carrying out_biz_no (the refund's
out_request_no) and refund_fee, which is everything refunded of the trade so far, not
this refund's money. The refund's own amount is asked of the gateway by the refund query
(`refunds`), and refund_fee must be able to include it; when the query cannot be asked,
refund_fee stands for it (right for a trade's only refund; a mismatch, refused and sent
again, for a later one).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime
from urllib.parse import parse_qsl

from aiohttp import web

from orchestrator.channels.alipay.outcomes import BEIJING, REFUND_SUCCESS, TRADE_STATUS
from orchestrator.domain.money import from_yuan
from orchestrator.domain.states import Channel
from orchestrator.providers.notices import Notice, NoticeRefused, NoticeRepeated
from orchestrator.providers.port import ProviderError, RefundStatus
from orchestrator.providers.signing import PublicKey, sorted_pairs, verify

NOT_SIGNED = frozenset({"sign", "sign_type"})
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
RESEND_HORIZON_S = 48 * 3600.0  # Alipay's resends end about 25 h after the first send
MAX_REMEMBERED = 100_000  # notify_ids; the oldest are forgotten first
LOOKUP_TIMEOUT_S = 8.0

# (the refund's own amount, its refund_status, trade_no), or None: no such refund
RefundLookup = Callable[[str, str], Awaitable[tuple[int, str, str] | None]]

# The notify_id this request's verify() read, for accepted() to remember. The listener
# calls accepted() only after verify() returned, within the same request.
_READ: ContextVar[str] = ContextVar("alipay_notify_id", default="")


def signed_text(params: Mapping[str, str]) -> bytes:
    return sorted_pairs(params, exclude=NOT_SIGNED).encode()


class NotifyIds:
    """The notify_ids answered `success`, each for `keep_s`, at most `most` of them."""

    def __init__(self, keep_s: float = RESEND_HORIZON_S, most: int = MAX_REMEMBERED) -> None:
        self._keep_s = keep_s
        self._most = most
        self._until: OrderedDict[str, float] = OrderedDict()

    def remember(self, notify_id: str, now: float) -> None:
        self._until.pop(notify_id, None)
        self._until[notify_id] = now + self._keep_s
        self._forget(now)

    def answered(self, notify_id: str, now: float) -> bool:
        self._forget(now)
        return notify_id in self._until

    def __len__(self) -> int:
        return len(self._until)

    def _forget(self, now: float) -> None:
        while self._until and (
            len(self._until) > self._most or next(iter(self._until.values())) <= now
        ):
            self._until.popitem(last=False)


class AlipayNotifications:
    channel = Channel.ALIPAY

    def __init__(
        self,
        alipay_keys: PublicKey | Sequence[PublicKey] | Callable[[], Sequence[PublicKey]],
        app_id: str,
        max_skew_s: float,
        clock: Callable[[], float] = time.time,
        *,
        refunds: RefundLookup,
        answered: NotifyIds | None = None,
        seller_id: str = "",
    ) -> None:
        # A callable is asked at every notification: certificate mode learns Alipay's new
        # certificate when an answer names it (adapter.py).
        if callable(alipay_keys):
            self._keys = alipay_keys
        else:
            fixed = [alipay_keys] if isinstance(alipay_keys, PublicKey) else list(alipay_keys)
            self._keys = lambda: fixed
        self._app_id = app_id
        self._max_skew_s = max_skew_s  # how far ahead of our clock notify_time may be
        self._clock = clock
        self._refunds = refunds
        self._answered = answered if answered is not None else NotifyIds()
        self._seller_id = seller_id  # the merchant's PID; "": not checked

    async def verify(self, headers: Mapping[str, str], body: bytes) -> Notice:
        _READ.set("")
        params = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        if not params.get("sign"):
            raise NoticeRefused("unsigned: no sign parameter")
        if params.get("sign_type") != "RSA2":
            raise NoticeRefused(f"sign_type {params.get('sign_type')!r} is not RSA2")
        text = signed_text(params)
        if not any(verify(key, text, params["sign"]) for key in self._keys()):
            raise NoticeRefused("signature does not verify")
        if params.get("app_id") != self._app_id:
            raise NoticeRefused("notification for another app_id")
        if self._seller_id and params.get("seller_id") != self._seller_id:
            raise NoticeRefused("notification for another seller_id")
        self._check_time(params.get("notify_time", ""))
        notify_id = params.get("notify_id", "")
        if not notify_id:
            raise NoticeRefused("no notify_id")
        if self._answered.answered(notify_id, self._clock()):
            raise NoticeRepeated(f"notify_id {notify_id} was answered success before")
        try:
            notice = await self._notice(params)
        except (KeyError, ValueError):
            raise NoticeRefused("notification lacks a field it needs") from None
        _READ.set(notify_id)
        return notice

    def accepted(self) -> web.Response:
        notify_id = _READ.get()
        if notify_id:
            self._answered.remember(notify_id, self._clock())
            _READ.set("")
        return web.Response(text="success", content_type="text/plain")

    def refused(self, why: str) -> web.Response:
        return web.Response(text="fail", content_type="text/plain")

    def _check_time(self, notify_time: str) -> None:
        try:
            sent = datetime.strptime(notify_time, TIME_FORMAT).replace(tzinfo=BEIJING)
        except ValueError:
            raise NoticeRefused("notify_time missing or malformed") from None
        age_s = self._clock() - sent.timestamp()
        if age_s < -self._max_skew_s:
            raise NoticeRefused(f"notify_time {notify_time} is ahead of our clock")
        if age_s > RESEND_HORIZON_S:
            raise NoticeRefused(f"notify_time {notify_time} is older than Alipay's resends")

    async def _notice(self, params: dict[str, str]) -> Notice:
        out_trade_no, trade_no = params["out_trade_no"], params.get("trade_no", "")
        if params.get("out_biz_no") and params.get("refund_fee"):
            return await self._refund_notice(params)
        return Notice(
            Channel.ALIPAY,
            out_trade_no=out_trade_no,
            trade_no=trade_no,
            amount_fen=from_yuan(params["total_amount"]),
            trade_status=TRADE_STATUS[params["trade_status"]],
        )

    async def _refund_notice(self, params: dict[str, str]) -> Notice:
        out_trade_no, out_biz_no = params["out_trade_no"], params["out_biz_no"]
        refunded_so_far = from_yuan(params["refund_fee"])
        amount, trade_no = await self._refund_amount(out_trade_no, out_biz_no, refunded_so_far)
        total = params.get("total_amount")
        if refunded_so_far < amount or (total and refunded_so_far > from_yuan(total)):
            raise NoticeRefused(
                f"refund_fee {params['refund_fee']} (all refunded of the trade) cannot "
                f"include refund {out_biz_no} of {amount} fen"
            )
        return Notice(
            Channel.ALIPAY,
            out_trade_no=out_trade_no,
            trade_no=params.get("trade_no", "") or trade_no,
            amount_fen=amount,
            out_refund_no=out_biz_no,
            refund_no=out_biz_no,
            refund_status=RefundStatus.SUCCEEDED,  # Alipay tells only refunds that happened
        )

    async def _refund_amount(
        self, out_trade_no: str, out_biz_no: str, refunded_so_far: int
    ) -> tuple[int, str]:
        """The refund's own amount, by the refund query. When the query cannot be asked,
        refund_fee itself: it is the refund's amount exactly when the refund is the
        trade's only one, and otherwise differs from the amount windowpay recorded, so
        the notice is refused as a mismatch and Alipay sends it again later."""
        try:
            found = await asyncio.wait_for(
                self._refunds(out_trade_no, out_biz_no), LOOKUP_TIMEOUT_S
            )
        except (ProviderError, TimeoutError):
            return refunded_so_far, ""
        if found is None or found[1] not in ("", REFUND_SUCCESS):
            raise NoticeRefused(f"the refund query does not show refund {out_biz_no} done")
        return found[0], found[2]


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

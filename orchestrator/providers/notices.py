"""A provider's signed notification, once verified: one more answer about a trade or a
refund, which arrived without being asked for.

The channel's verifier (channels/<ch>/notify.py) turns the provider's message into a
Notice; the order's service-point actor applies it as it would apply the answer to its
own query, and says what became of it (NoticeOutcome).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from aiohttp import web

from orchestrator.domain.states import Channel
from orchestrator.providers.port import RefundAnswer, RefundStatus, TradeAnswer, TradeStatus


@dataclass(frozen=True, slots=True)
class Notice:
    channel: Channel
    out_trade_no: str  # the attempt id ("" in a refund notification that omits it)
    trade_no: str  # the provider's own trade number
    amount_fen: int  # the trade's amount, or for a refund the refund's
    trade_status: TradeStatus | None = None  # a payment notification
    out_refund_no: str = ""  # a refund notification: the refund id
    refund_no: str = ""
    refund_status: RefundStatus | None = None

    @property
    def is_refund(self) -> bool:
        return self.refund_status is not None

    @property
    def out_no(self) -> str:
        """The windowpay id the notification is about."""
        return self.out_refund_no if self.is_refund else self.out_trade_no

    def trade_answer(self) -> TradeAnswer:
        assert self.trade_status is not None
        return TradeAnswer(self.trade_status, self.trade_no, "notified")

    def refund_answer(self) -> RefundAnswer:
        assert self.refund_status is not None
        return RefundAnswer(self.refund_status, self.refund_no, "notified")

    @property
    def final(self) -> bool:
        """Whether it tells an outcome (not merely "still in progress")."""
        if self.refund_status is not None:
            return self.refund_status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED)
        return self.trade_status in (TradeStatus.PAID, TradeStatus.DECLINED, TradeStatus.CLOSED)


class NoticeVerifier(Protocol):
    """One channel's notification protocol (channels/<name>/notify.py): the provider's
    message checked and read, and the answers the provider expects."""

    channel: Channel

    async def verify(self, headers: Mapping[str, str], body: bytes) -> Notice:
        """The notice, or NoticeRefused."""
        ...

    def accepted(self) -> web.Response: ...

    def refused(self, why: str) -> web.Response: ...


class NoticeRefused(Exception):
    """A notification that is not the provider's word (unsigned, forged, replayed, for
    another merchant, undecryptable): answered as a failure, nothing changes."""


class NoticeProbe(NoticeRefused):
    """A notification the provider signed wrongly on purpose, to see that it is refused
    (WeChat Pay's signature probes): refused, but counted as a probe, not an attack."""


class NoticeRepeated(Exception):
    """A notification the provider sent again after it was answered received (Alipay's
    same notify_id): answered received again so that the provider stops, counted a
    duplicate, and not read a second time."""


class NoticeOutcome(StrEnum):
    APPLIED = "applied"  # it resolved the attempt or refund
    DUPLICATE = "duplicate"  # the outcome it tells was already recorded: no effect
    UNKNOWN = "unknown"  # no such trade or refund here: answered received, logged
    IGNORED = "ignored"  # not an outcome, or one the record already settled otherwise
    MISMATCH = "mismatch"  # amount, trade number or channel differ: refused
    DEFERRED = "deferred"  # could not be applied yet: refused, so the provider resends

    @property
    def received(self) -> bool:
        """Whether the provider is told "received" (it stops resending)."""
        return self not in (NoticeOutcome.MISMATCH, NoticeOutcome.DEFERRED)


AnswerT = TypeVar("AnswerT")


class Inbox(Generic[AnswerT]):
    """Answers handed to a running driver by notifications. The driver takes them between
    its own provider calls, so a notification never races the driver's own query: the
    first of the two is applied, the other finds the outcome already recorded. Each put
    gets a future that says whether the driver applied that answer."""

    def __init__(self) -> None:
        self._items: list[tuple[AnswerT, asyncio.Future[bool]]] = []
        self._arrived = asyncio.Event()
        self.closed = False

    def put(self, answer: AnswerT) -> asyncio.Future[bool]:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_result(False)
            return future
        self._items.append((answer, future))
        self._arrived.set()
        return future

    def take(self) -> tuple[AnswerT, asyncio.Future[bool]] | None:
        if not self._items:
            return None
        return self._items.pop(0)

    async def nap(self, sleep: Awaitable[None]) -> None:
        """Sleep (on the driver's clock), cut short when an answer arrives."""
        sleeper = asyncio.ensure_future(sleep)
        arrival = asyncio.ensure_future(self._arrived.wait())
        if self._items:
            self._arrived.set()
        else:
            self._arrived.clear()
        try:
            await asyncio.wait({sleeper, arrival}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            arrival.cancel()

    def close(self) -> None:
        """The driver ended: whatever it did not take was not applied by it."""
        self.closed = True
        for _, future in self._items:
            if not future.done():
                future.set_result(False)
        self._items.clear()


def settled(future: asyncio.Future[bool], applied: bool) -> None:
    if not future.done():
        future.set_result(applied)


__all__ = [
    "Inbox",
    "Notice",
    "NoticeOutcome",
    "NoticeRefused",
    "NoticeVerifier",
    "RefundStatus",
    "TradeStatus",
]

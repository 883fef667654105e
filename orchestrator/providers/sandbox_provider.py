"""PaymentProvider over a sandbox bank reached in-process (or through any BankLink).

Used by unit tests directly, and by the service-point actors in the default deployment
through a link to the shared sandbox host, so the ledger survives an actor restart.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Protocol

from orchestrator.domain.states import Channel
from orchestrator.providers.port import (
    OutcomeUnknown,
    PayCall,
    ProviderUnavailable,
    RefundAnswer,
    ReverseAnswer,
    ReverseStatus,
    TradeAnswer,
    TradeStatus,
)
from orchestrator.sandbox.bank import BankReply, Reply, Trade, TradeState
from orchestrator.sandbox.bills import alipay_trade_bill, unionpay_settlement, wechat_trade_bill


class BankLink(Protocol):
    async def pay(
        self, out_trade_no: str, auth_code: str, amount_fen: int, store_id: str
    ) -> BankReply: ...

    async def query(self, out_trade_no: str) -> BankReply: ...

    async def reverse(self, out_trade_no: str) -> BankReply: ...

    async def refund(self, out_trade_no: str, out_refund_no: str, amount_fen: int) -> BankReply: ...

    def trades(self) -> list[Trade]: ...


_STATUS = {
    TradeState.SUCCESS: TradeStatus.PAID,
    TradeState.REFUND: TradeStatus.PAID,
    TradeState.USERPAYING: TradeStatus.CONFIRMING,
    TradeState.PAYERROR: TradeStatus.DECLINED,
    TradeState.CLOSED: TradeStatus.CLOSED,
    TradeState.REVOKED: TradeStatus.CLOSED,
}


class SandboxProvider:
    def __init__(self, channel: Channel, link: BankLink) -> None:
        self.channel = channel
        self._link = link

    async def pay(self, call: PayCall) -> TradeAnswer:
        reply = await self._link.pay(
            call.out_trade_no, call.auth_code, call.amount_fen, call.store_id
        )
        return self._answer(reply, use_told=True)

    async def query(self, out_trade_no: str) -> TradeAnswer:
        return self._answer(await self._link.query(out_trade_no), use_told=False)

    async def reverse(self, out_trade_no: str) -> ReverseAnswer:
        reply = await self._link.reverse(out_trade_no)
        self._raise_for(reply)
        if reply.reply is Reply.RETRY:
            return ReverseAnswer(ReverseStatus.RETRY, reply.reason)
        return ReverseAnswer(ReverseStatus.DONE, reply.reason)

    async def refund(
        self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int
    ) -> RefundAnswer:
        reply = await self._link.refund(out_trade_no, out_refund_no, refund_fen)
        self._raise_for(reply)
        if reply.refund is None:
            return RefundAnswer("", done=False, reason=reply.reason)
        return RefundAnswer(reply.refund.refund_no, done=True)

    async def bill(self, day: date) -> bytes:
        """The bill the channel's sandbox gateway would give, from the bank's ledger."""
        trades = self._link.trades()
        if self.channel is Channel.WECHAT:
            return wechat_trade_bill(trades, day, "wx-sandbox", "sandbox")
        if self.channel is Channel.ALIPAY:
            return alipay_trade_bill(trades, day, "sandbox", time.time())
        return unionpay_settlement(trades, day, "sandbox")

    def _answer(self, reply: BankReply, *, use_told: bool) -> TradeAnswer:
        self._raise_for(reply)
        if reply.reply is Reply.NOT_FOUND or reply.trade is None:
            return TradeAnswer(TradeStatus.NOT_FOUND, reason=reply.reason)
        state = reply.told if use_told and reply.told is not None else reply.trade.state
        return TradeAnswer(_STATUS[state], reply.trade.trade_no, reply.trade.reason)

    @staticmethod
    def _raise_for(reply: BankReply) -> None:
        if reply.reply is Reply.UNAVAILABLE:
            raise ProviderUnavailable(reply.reason)
        if reply.reply is Reply.SYSTEM_ERROR:
            raise OutcomeUnknown(reply.reason)

"""PaymentProvider over a sandbox bank reached in-process (or through any BankLink).

The unit and integration tests drive the engine and the service point with it, without
HTTP; the deployment always speaks the real protocols to the gateways. Its daily bill is
the channel's own format, found through the registry.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

from orchestrator.channels.registry import spec
from orchestrator.domain.states import Channel
from orchestrator.providers.port import (
    OutcomeUnknown,
    PayCall,
    ProviderRejected,
    QrAnswer,
    QrCall,
    RefundAnswer,
    RefundCall,
    RefundStatus,
    ReverseAnswer,
    ReverseStatus,
    TradeAnswer,
    TradeRef,
    TradeStatus,
    check_bound,
)
from orchestrator.sandbox.bank import BankReply, RefundState, Reply, Trade, TradeState


class BankLink(Protocol):
    async def pay(
        self, out_trade_no: str, auth_code: str, amount_fen: int, store_id: str
    ) -> BankReply: ...

    async def query(self, out_trade_no: str) -> BankReply: ...

    async def reverse(self, out_trade_no: str) -> BankReply: ...

    async def create_qr(
        self, out_trade_no: str, amount_fen: int, store_id: str, expires_at: float
    ) -> BankReply: ...

    async def close(self, out_trade_no: str) -> BankReply: ...

    async def refund(self, out_trade_no: str, out_refund_no: str, amount_fen: int) -> BankReply: ...

    async def refund_status(self, out_trade_no: str, out_refund_no: str) -> BankReply: ...

    def trades(self) -> list[Trade]: ...


QR_SCHEME = "sandbox-qr:"  # in-process codes: the bank's token, scanned by the test itself
_STATUS = {
    TradeState.NOTPAY: TradeStatus.CONFIRMING,
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
        if reply.reply is Reply.PROXY_ERROR:
            raise OutcomeUnknown("unsigned 503 from a proxy")
        if reply.reply is Reply.ALREADY:
            raise OutcomeUnknown("already paid")
        return self._answer(reply, call.trade, use_told=True)

    async def query(self, trade: TradeRef) -> TradeAnswer:
        return self._answer(await self._link.query(trade.out_trade_no), trade, use_told=False)

    async def reverse(self, trade: TradeRef) -> ReverseAnswer:
        reply = await self._link.reverse(trade.out_trade_no)
        self._raise_for(reply)
        if reply.reply is Reply.RETRY:
            return ReverseAnswer(ReverseStatus.RETRY, reply.reason)
        return ReverseAnswer(ReverseStatus.DONE, reply.reason)

    async def create_qr(self, call: QrCall) -> QrAnswer:
        reply = await self._link.create_qr(
            call.out_trade_no, call.amount_fen, call.store_id, call.expires_at_ms / 1000
        )
        self._raise_for(reply)
        if reply.trade is None or reply.reply is not Reply.OK:
            raise ProviderRejected(f"no QR code: {reply.reason}")
        check_bound("out_trade_no", call.out_trade_no, reply.trade.out_trade_no)
        return QrAnswer(f"{QR_SCHEME}{reply.trade.qr_token}")

    async def close(self, trade: TradeRef) -> ReverseAnswer:
        reply = await self._link.close(trade.out_trade_no)
        self._raise_for(reply)
        if reply.reply is Reply.ALREADY:
            return ReverseAnswer(ReverseStatus.PAID, reply.reason)
        return ReverseAnswer(ReverseStatus.DONE, "closed")

    async def refund(self, call: RefundCall) -> RefundAnswer:
        reply = await self._link.refund(
            call.trade.out_trade_no, call.out_refund_no, call.refund_fen
        )
        if reply.reply is Reply.ALREADY:
            return RefundAnswer(RefundStatus.PENDING, reason="already refunded")
        return self._refund_answer(reply)

    async def refund_query(self, call: RefundCall) -> RefundAnswer:
        reply = await self._link.refund_status(call.trade.out_trade_no, call.out_refund_no)
        if reply.reply is Reply.NOT_FOUND:
            return RefundAnswer(RefundStatus.NOT_FOUND, reason=reply.reason)
        return self._refund_answer(reply)

    async def bill(self, day: date) -> bytes:
        """The bill the channel's sandbox gateway would give, from the bank's ledger."""
        return spec(self.channel).ledger_bill(self._link.trades(), day)

    def _refund_answer(self, reply: BankReply) -> RefundAnswer:
        self._raise_for(reply)
        if reply.reply in (Reply.REFUSED, Reply.NOT_FOUND) or reply.refund is None:
            return RefundAnswer(RefundStatus.FAILED, reason=reply.reason)
        if reply.refund.state is not RefundState.SUCCESS:
            return RefundAnswer(RefundStatus.PENDING, reason=reply.refund.state.value)
        return RefundAnswer(RefundStatus.SUCCEEDED, reply.refund.refund_no)

    def _answer(self, reply: BankReply, asked: TradeRef, *, use_told: bool) -> TradeAnswer:
        self._raise_for(reply)
        if reply.reply is Reply.NOT_FOUND or reply.trade is None:
            return TradeAnswer(TradeStatus.NOT_FOUND, reason=reply.reason)
        check_bound("out_trade_no", asked.out_trade_no, reply.trade.out_trade_no)
        check_bound("amount", asked.amount_fen, reply.trade.amount_fen)
        state = reply.told if use_told and reply.told is not None else reply.trade.state
        return TradeAnswer(_STATUS[state], reply.trade.trade_no, reply.trade.reason)

    @staticmethod
    def _raise_for(reply: BankReply) -> None:
        # The bank's "unavailable" stands for an unsigned HTTP 5xx, which may come from
        # a proxy in front of a gateway that did the work: unknown, as over HTTP.
        if reply.reply in (Reply.UNAVAILABLE, Reply.SYSTEM_ERROR, Reply.PROXY_ERROR):
            raise OutcomeUnknown(reply.reason)

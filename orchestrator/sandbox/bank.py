"""One provider's sandbox ledger and the behaviours of docs/DOMAIN.md §7.

The auth code's last four digits choose what happens, like a test card number. The bank
is protocol-neutral: it answers in BankReply values that the in-process adapter and the
HTTP sandboxes translate into their own terms. Delays are multiplied by `time_scale`.

Given a durable journal, the ledger outlives its process: every change is noted as it is
made, and every operation that answers waits until its changes are committed.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import partial

from orchestrator.sandbox.journal import Journal
from orchestrator.sandbox.trades import Behaviour as Behaviour
from orchestrator.sandbox.trades import RefundState as RefundState
from orchestrator.sandbox.trades import Trade as Trade
from orchestrator.sandbox.trades import TradeRefund as TradeRefund
from orchestrator.sandbox.trades import TradeState as TradeState
from orchestrator.sandbox.trades import decode_trade, encode_trade


class Reply(StrEnum):
    OK = "OK"
    NOT_FOUND = "NOT_FOUND"
    UNAVAILABLE = "UNAVAILABLE"  # HTTP 5xx: nothing recorded
    PROXY_ERROR = "PROXY_ERROR"  # an unsigned 5xx from a proxy, though it was recorded
    SYSTEM_ERROR = "SYSTEM_ERROR"  # an error answer, though something may have happened
    RETRY = "RETRY"  # reverse: try again
    REFUSED = "REFUSED"  # refund: not allowed (amount, state, merchant balance)
    ALREADY = "ALREADY"  # a resend refused as "already paid" / "already refunded"


@dataclass(frozen=True, slots=True)
class BankReply:
    reply: Reply
    trade: Trade | None = None  # a copy; never the ledger's own object
    told: TradeState | None = None  # what the pay call says (7777 says USERPAYING)
    refund: TradeRefund | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Timing:
    time_scale: float = 1.0
    confirm_after_s: float = 8.0
    slow_query_s: float = 2.0
    hang_s: float = 90.0
    refund_processing_s: float = 20.0


Settled = Callable[["Trade", "TradeRefund | None"], None]  # a copy of the paid trade (and refund)


class SandboxBank:
    def __init__(
        self,
        name: str,
        timing: Timing | None = None,
        now: Callable[[], float] = time.time,
        journal: Journal | None = None,
    ) -> None:
        self.name = name
        self.timing = timing or Timing()
        self._now = now
        self.journal = journal or Journal()
        stored = sorted(
            (decode_trade(body) for body in self.journal.load(name, TRADE).values()),
            key=lambda t: (t.created_at, t.trade_no),
        )
        self._trades: dict[str, Trade] = {t.out_trade_no: t for t in stored}
        self._used_codes: set[str] = set(self.journal.load(name, CODE))
        self._serial = int(self.journal.load(name, META).get(SERIAL, b"0"))
        self.faults: set[str] = set()  # operations that answer "unavailable" (tests)
        # Told of every trade that becomes paid and every refund that succeeds (the
        # gateway sends its notification); `notifications` False drops them all, and a
        # trade in `silenced` has none (tests: polling must find the payment).
        self.on_settled: Settled | None = None
        self.notifications = True
        self.silenced: set[str] = set()
        self._told: set[str] = set(self.journal.load(name, TOLD))

    # ---- the provider's operations --------------------------------------------

    async def pay(
        self,
        out_trade_no: str,
        auth_code: str,
        amount_fen: int,
        store_id: str,
        *,
        notify: bool = True,
    ) -> BankReply:
        """A payment-code payment. `notify` False: the provider sends no notification of
        the payment (its refunds are still notified), as WeChat Pay for a code payment."""
        if "pay" in self.faults:
            return BankReply(Reply.UNAVAILABLE, reason="fault injected")
        existing = self._trades.get(out_trade_no)
        if existing is not None:  # a resend of the same pay: answer with what happened
            self._refresh(existing)
            await self.saved()
            if existing.behaviour is Behaviour.PROXY_503_PAID:
                return BankReply(Reply.ALREADY, self._copy(existing), reason="ORDERPAID")
            return self._reply(existing)
        behaviour = Behaviour.of(auth_code)
        if behaviour is Behaviour.UNAVAILABLE:
            return BankReply(Reply.UNAVAILABLE, reason="service unavailable, nothing recorded")
        now = self._now()
        trade = Trade(
            out_trade_no=out_trade_no,
            trade_no=self._trade_no(),
            amount_fen=amount_fen,
            auth_code=auth_code,
            behaviour=behaviour,
            store_id=store_id,
            state=TradeState.SUCCESS,
            created_at=now,
            notify=notify,
        )
        self._add(trade)
        if auth_code in self._used_codes:
            trade.state, trade.reason = TradeState.PAYERROR, "AUTH_CODE_USED"
            await self.saved()
            return self._reply(trade)
        self._used_codes.add(auth_code)
        self.journal.note((self.name, CODE, auth_code), _empty)
        match behaviour:
            case Behaviour.CODE_INVALID:
                trade.state, trade.reason = TradeState.PAYERROR, "AUTHCODEEXPIRE"
            case Behaviour.DECLINED:
                trade.state, trade.reason = TradeState.PAYERROR, "NOTENOUGH"
            case Behaviour.CONFIRMS_LATER:
                trade.state = TradeState.USERPAYING
                trade.confirm_at = now + self._scaled(self.timing.confirm_after_s)
                self._wake(trade, trade.confirm_at - now)
            case Behaviour.NEVER_CONFIRMS | Behaviour.REVERSE_RETRY:
                trade.state = TradeState.USERPAYING
            case _:
                trade.paid_at = now
                self._settled(trade)
        await self.saved()  # what the answer says (or hides) outlives a crash from here
        if behaviour is Behaviour.SYSTEM_ERROR_PAID:
            return BankReply(Reply.SYSTEM_ERROR, reason="SYSTEMERROR")
        if behaviour is Behaviour.PROXY_503_PAID:
            return BankReply(Reply.PROXY_ERROR, reason="bad gateway (proxy)")
        if behaviour is Behaviour.WRONG_TRADE_ANSWER:
            return self._reply(self._decoy(trade))
        if behaviour is Behaviour.HANGS_PAID:
            await asyncio.sleep(self._scaled(self.timing.hang_s))
        if behaviour is Behaviour.SLOW_QUERY:
            return self._reply(trade, told=TradeState.USERPAYING)
        return self._reply(trade)

    async def query(self, out_trade_no: str) -> BankReply:
        if "query" in self.faults:
            return BankReply(Reply.UNAVAILABLE, reason="fault injected")
        trade = self._trades.get(out_trade_no)
        if trade is not None and trade.behaviour is Behaviour.SLOW_QUERY:
            await asyncio.sleep(self._scaled(self.timing.slow_query_s))
        if trade is None:
            return BankReply(Reply.NOT_FOUND, reason="ORDER_NOT_EXIST")
        self._refresh(trade)
        await self.saved()
        return self._reply(trade)

    async def reverse(self, out_trade_no: str) -> BankReply:
        if "reverse" in self.faults:
            return BankReply(Reply.UNAVAILABLE, reason="fault injected")
        trade = self._trades.get(out_trade_no)
        now = self._now()
        if trade is None:
            # Closing an unknown trade number makes sure it can never be paid later.
            trade = Trade(
                out_trade_no=out_trade_no,
                trade_no="",
                amount_fen=0,
                auth_code="",
                behaviour=Behaviour.PAYS,
                store_id="",
                state=TradeState.CLOSED,
                created_at=now,
                closed_at=now,
                reason="closed before payment",
            )
            self._add(trade)
            await self.saved()
            return self._reply(trade)
        trade.reverse_calls += 1
        self._keep(trade)
        if trade.behaviour is Behaviour.REVERSE_RETRY and trade.reverse_calls == 1:
            await self.saved()
            return BankReply(Reply.RETRY, self._copy(trade), reason="please try again")
        self._refresh(trade)
        if trade.state in (TradeState.SUCCESS, TradeState.REFUND):
            trade.state, trade.closed_at = TradeState.REVOKED, now
        elif trade.state in (TradeState.NOTPAY, TradeState.USERPAYING, TradeState.PAYERROR):
            trade.state, trade.closed_at = TradeState.CLOSED, now
        await self.saved()
        return self._reply(trade)

    async def refund(
        self, out_trade_no: str, out_refund_no: str, amount_fen: int, kind: str = "refund"
    ) -> BankReply:
        if "refund" in self.faults:
            return BankReply(Reply.UNAVAILABLE, reason="fault injected")
        trade = self._trades.get(out_trade_no)
        if trade is None:
            return BankReply(Reply.NOT_FOUND, reason="ORDER_NOT_EXIST")
        for done in trade.refunds:
            if done.out_refund_no == out_refund_no:  # a resend: same answer
                self._refresh(trade)
                await self.saved()
                if trade.behaviour is Behaviour.REFUND_ANSWER_LOST:
                    return BankReply(Reply.ALREADY, self._copy(trade), refund=replace(done))
                return BankReply(Reply.OK, self._copy(trade), refund=replace(done))
        self._refresh(trade)
        await self.saved()
        if trade.state not in (TradeState.SUCCESS, TradeState.REFUND):
            return BankReply(Reply.REFUSED, self._copy(trade), reason="TRADE_NOT_PAID")
        if amount_fen <= 0 or trade.refunded_fen + amount_fen > trade.amount_fen:
            return BankReply(Reply.REFUSED, self._copy(trade), reason="REFUND_AMOUNT_EXCEEDED")
        if trade.behaviour is Behaviour.REFUND_REFUSED:
            return BankReply(Reply.REFUSED, self._copy(trade), reason="MERCHANT_BALANCE_LOW")
        now = self._now()
        refund = TradeRefund(out_refund_no, f"R{self._trade_no()}", amount_fen, now, kind)
        if trade.behaviour is Behaviour.REFUND_SLOW:
            refund.state = RefundState.PROCESSING
            refund.done_at = now + self._scaled(self.timing.refund_processing_s)
            self._wake(trade, refund.done_at - now)
        trade.refunds.append(refund)
        trade.state = TradeState.REFUND
        self._keep(trade)
        if refund.state is RefundState.SUCCESS:
            self._settled(trade, refund)
        await self.saved()
        if trade.behaviour is Behaviour.REFUND_ANSWER_LOST:
            await asyncio.sleep(self._scaled(self.timing.hang_s))  # past the client's timeout
        return BankReply(Reply.OK, self._copy(trade), refund=replace(refund))

    async def refund_status(self, out_trade_no: str, out_refund_no: str) -> BankReply:
        """The refund's own query."""
        if "refund" in self.faults:
            return BankReply(Reply.UNAVAILABLE, reason="fault injected")
        trade = self._trades.get(out_trade_no)
        refund = self._refund_of(trade, out_refund_no)
        if trade is None or refund is None:
            return BankReply(Reply.NOT_FOUND, reason="RESOURCE_NOT_EXISTS")
        self._refresh(trade)
        await self.saved()
        return BankReply(Reply.OK, self._copy(trade), refund=replace(refund))

    def refund_by_no(self, out_refund_no: str) -> tuple[Trade, TradeRefund] | None:
        """A refund found by its own number alone (WeChat and UnionPay ask that way)."""
        for trade in self._trades.values():
            refund = self._refund_of(trade, out_refund_no)
            if refund is not None:
                self._refresh(trade)
                return self._copy(trade), replace(refund)
        return None

    def trade_by_no(self, trade_no: str) -> Trade | None:
        """A trade found by the provider's own number (UnionPay's origQryId)."""
        for trade in self._trades.values():
            if trade.trade_no == trade_no and trade_no:
                return self._copy(self._refresh(trade))
        return None

    # ---- the payer scans (QR codes) ----------------------------------------------

    async def create_qr(
        self, out_trade_no: str, amount_fen: int, store_id: str, expires_at: float
    ) -> BankReply:
        """A trade awaiting the payer's scan, and the token of its code. Asked again for
        the same trade number, it answers with the same code."""
        if "pay" in self.faults:
            return BankReply(Reply.UNAVAILABLE, reason="fault injected")
        existing = self._trades.get(out_trade_no)
        if existing is not None:
            if not existing.qr_token or existing.amount_fen != amount_fen:
                return BankReply(Reply.REFUSED, self._copy(existing), reason="ORDER_EXISTS")
            self._refresh(existing)
            await self.saved()
            return self._reply(existing)
        trade = Trade(
            out_trade_no=out_trade_no,
            trade_no=self._trade_no(),
            amount_fen=amount_fen,
            auth_code="",
            behaviour=Behaviour.PAYS,
            store_id=store_id,
            state=TradeState.NOTPAY,
            created_at=self._now(),
            qr_token=secrets.token_urlsafe(12),
            qr_expires_at=expires_at,
        )
        self._add(trade)
        await self.saved()
        return self._reply(trade)

    async def close(self, out_trade_no: str) -> BankReply:
        """Close an unpaid trade (WeChat close, Alipay close, UnionPay QR cancel): ALREADY
        when it was paid first; an unknown number is closed so it can never be paid."""
        if "reverse" in self.faults:
            return BankReply(Reply.UNAVAILABLE, reason="fault injected")
        trade = self._trades.get(out_trade_no)
        if trade is None:
            return await self.reverse(out_trade_no)
        self._refresh(trade)
        if trade.state in (TradeState.NOTPAY, TradeState.USERPAYING, TradeState.PAYERROR):
            trade.state, trade.closed_at = TradeState.CLOSED, self._now()
            self._keep(trade)
        await self.saved()
        if trade.state in (TradeState.SUCCESS, TradeState.REFUND):
            return BankReply(Reply.ALREADY, self._copy(trade), reason="ORDERPAID")
        return self._reply(trade)

    def qr_trade(self, token: str) -> Trade | None:
        """The trade a QR code's token names."""
        for trade in self._trades.values():
            if token and trade.qr_token == token:
                return self._copy(self._refresh(trade))
        return None

    def scan(self, out_trade_no: str, *, notify: bool = True) -> Trade | None:
        """The payer app scanned the code: the payer is confirming."""
        trade = self._trades.get(out_trade_no)
        if trade is None:
            return None
        trade.scanned, trade.notify = True, notify
        if trade.state is TradeState.NOTPAY:
            trade.state = TradeState.USERPAYING
        self._keep(trade)
        return self._copy(trade)

    def pay_scanned(self, out_trade_no: str, *, even_if_closed: bool = False) -> Trade | None:
        """The payer app pays a scanned code: the one place a QR trade becomes paid.
        `even_if_closed` models a payment that raced the close and won at the bank."""
        trade = self._trades.get(out_trade_no)
        if trade is None:
            return None
        payable = {TradeState.NOTPAY, TradeState.USERPAYING}
        if even_if_closed:
            payable.add(TradeState.CLOSED)
        if trade.state in payable:
            trade.state, trade.paid_at, trade.reason = TradeState.SUCCESS, self._now(), ""
            self._keep(trade)
            self._settled(trade)
        return self._copy(trade)

    def decline_scanned(self, out_trade_no: str, reason: str = "NOTENOUGH") -> Trade | None:
        """The payer app's try is refused (balance too low). As at the real gateways, a
        failed try does not end a trade the payer scans: it stays awaiting payment (WeChat
        Native NOTPAY, Alipay WAIT_BUYER_PAY, UnionPay in progress), and the code can
        still be paid, by another card or another try, until it is closed."""
        trade = self._trades.get(out_trade_no)
        if trade is None:
            return None
        if trade.state in (TradeState.NOTPAY, TradeState.USERPAYING):
            trade.failed_tries = (*trade.failed_tries, reason)
            self._keep(trade)
        return self._copy(trade)

    # ---- the ledger --------------------------------------------------------------

    async def saved(self) -> None:
        """Return once every change so far is durable (at once without a durable journal):
        an answer about them may then be given."""
        await self.journal.saved()

    def resume(self) -> None:
        """After a restart: let each trade's time come again (a payer who confirms, a
        refund that goes through), so that its notification is sent when it happens."""
        now = self._now()
        for trade in self._trades.values():
            if trade.state is TradeState.USERPAYING and trade.confirm_at is not None:
                self._wake(trade, trade.confirm_at - now)
            for refund in trade.refunds:
                if refund.state is RefundState.PROCESSING and refund.done_at is not None:
                    self._wake(trade, refund.done_at - now)

    def now(self) -> float:
        return self._now()

    def plant(self, out_trade_no: str, amount_fen: int, store_id: str = "") -> Trade:
        """A paid trade the merchant never asked for (tests: missing at windowpay)."""
        now = self._now()
        trade = Trade(
            out_trade_no=out_trade_no,
            trade_no=self._trade_no(),
            amount_fen=amount_fen,
            auth_code="",
            behaviour=Behaviour.PAYS,
            store_id=store_id,
            state=TradeState.SUCCESS,
            created_at=now,
            paid_at=now,
        )
        self._add(trade)
        return self._copy(trade)

    def drop(self, out_trade_no: str) -> bool:
        """Forget a trade (tests: missing at the provider)."""
        if self._trades.pop(out_trade_no, None) is None:
            return False
        self.journal.note((self.name, TRADE, out_trade_no), None)
        return True

    def alter(
        self, out_trade_no: str, *, amount_fen: int | None = None, paid: bool | None = None
    ) -> Trade | None:
        """Change what the ledger says of a trade (tests: amount and state mismatches)."""
        trade = self._trades.get(out_trade_no)
        if trade is None:
            return None
        self._keep(trade)
        if amount_fen is not None:
            trade.amount_fen = amount_fen
        if paid is True:
            trade.state, trade.paid_at = TradeState.SUCCESS, trade.paid_at or self._now()
            self._settled(trade)
        elif paid is False:
            trade.state, trade.closed_at = TradeState.REVOKED, self._now()
        return self._copy(trade)

    def confirm(self, out_trade_no: str) -> Trade | None:
        """The payer confirms now, whatever the behaviour said (tests of late success)."""
        trade = self._trades.get(out_trade_no)
        if trade is not None and trade.state is TradeState.USERPAYING:
            trade.state, trade.paid_at = TradeState.SUCCESS, self._now()
            self._keep(trade)
            self._settled(trade)
        return None if trade is None else self._copy(trade)

    def trades(self) -> list[Trade]:
        return [self._copy(self._refresh(t)) for t in self._trades.values()]

    def trade(self, out_trade_no: str) -> Trade | None:
        trade = self._trades.get(out_trade_no)
        return None if trade is None else self._copy(self._refresh(trade))

    # ---- helpers -------------------------------------------------------------------

    def _refresh(self, trade: Trade) -> Trade:
        """Let time pass: a 1111 payer confirms once their moment has come, a 2323
        refund goes through once it has been processed long enough."""
        now = self._now()
        if (
            trade.state is TradeState.USERPAYING
            and trade.confirm_at is not None
            and now >= trade.confirm_at
        ):
            trade.state, trade.paid_at = TradeState.SUCCESS, trade.confirm_at
            self._keep(trade)
            self._settled(trade)
        for refund in trade.refunds:
            if refund.state is RefundState.PROCESSING and now >= (refund.done_at or 0):
                refund.state = RefundState.SUCCESS
                self._keep(trade)
                self._settled(trade, refund)
        return trade

    def _settled(self, trade: Trade, refund: TradeRefund | None = None) -> None:
        """The one hook every trade that becomes paid, and every refund that succeeds,
        passes through: the provider tells the merchant (once) by its notification."""
        key = refund.out_refund_no if refund is not None else trade.out_trade_no
        if key in self._told:
            return
        self._told.add(key)
        self.journal.note((self.name, TOLD, key), _empty)
        if self.on_settled is None or not self.notifications:
            return
        if trade.out_trade_no in self.silenced or (refund is None and not trade.notify):
            return
        self.on_settled(self._copy(trade), None if refund is None else replace(refund))

    def _wake(self, trade: Trade, after_s: float) -> None:
        """Let the trade's time come without anyone asking (a 1111 payer confirms, a 2323
        refund goes through), so that its notification is sent when it happens."""
        loop = asyncio.get_running_loop()
        loop.call_later(max(0.0, after_s) + 0.01, self._refresh, trade)

    @staticmethod
    def _refund_of(trade: Trade | None, out_refund_no: str) -> TradeRefund | None:
        if trade is None:
            return None
        return next((r for r in trade.refunds if r.out_refund_no == out_refund_no), None)

    def _decoy(self, trade: Trade) -> Trade:
        """Another trade, as a wrongly routed answer would name it."""
        first = "Y" if trade.out_trade_no.startswith("X") else "X"
        return replace(
            trade,
            out_trade_no=first + trade.out_trade_no[1:],
            trade_no=self._trade_no(),
            amount_fen=trade.amount_fen + 100,
            refunds=[],
        )

    def _reply(self, trade: Trade, told: TradeState | None = None) -> BankReply:
        return BankReply(Reply.OK, self._copy(trade), told=told or trade.state, reason=trade.reason)

    def _copy(self, trade: Trade) -> Trade:
        return replace(trade, refunds=[replace(r) for r in trade.refunds])

    def _scaled(self, seconds: float) -> float:
        return seconds * self.timing.time_scale

    def _trade_no(self) -> str:
        self._serial += 1
        self.journal.note((self.name, META, SERIAL), partial(_serial_body, self._serial))
        stamp = time.strftime("%Y%m%d", time.localtime(self._now()))
        return f"{self.name[:2].upper()}{stamp}{self._serial:010d}"

    def _add(self, trade: Trade) -> None:
        self._trades[trade.out_trade_no] = trade
        self._keep(trade)

    def _keep(self, trade: Trade) -> None:
        """Note that the trade changed: the journal writes it as it is when it writes."""
        self.journal.note((self.name, TRADE, trade.out_trade_no), partial(encode_trade, trade))


# ---- the journal's entries --------------------------------------------------------------

TRADE, CODE, TOLD, META = "trade", "code", "told", "meta"  # a ledger's kinds of entry
SERIAL = "serial"  # META: the last serial number given to a trade or refund


def _empty() -> bytes:
    return b""


def _serial_body(serial: int) -> bytes:
    return str(serial).encode()

"""What every sandbox gateway shares: its ledger (a SandboxBank), its keys, the delivery
of its notifications, and the admin endpoints tests and operators use to look at the
ledger or inject faults."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import ssl
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from enum import StrEnum
from functools import partial
from typing import Any, Generic, TypeVar

import aiohttp
import orjson
from aiohttp import web

from orchestrator.sandbox.bank import SandboxBank, Trade, TradeRefund, TradeState

log = logging.getLogger(__name__)

NOTIFY_TRIES = 6  # the first send and five resends, each after twice the wait before
NOTIFY_FIRST_WAIT_S = 1.0  # multiplied by the bank's time_scale
NOTIFY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Notification:
    """One signed notification as the gateway posts it."""

    body: bytes
    content_type: str
    headers: dict[str, str]
    expects: str = ""  # the body a "received" answer must have (Alipay: success)

    def delivered(self, status: int, text: str) -> bool:
        """Whether the merchant's answer means "received"."""
        return 200 <= status < 300 and (not self.expects or text.strip() == self.expects)


@dataclass
class Delivery:
    """A notification on its way, kept in the ledger until the merchant takes it or it
    is given up, so that a restarted gateway goes on where it was: the same body (the
    same signature and notification id), the same schedule of resends."""

    out_no: str  # the trade's or the refund's number
    notification: Notification
    next_at: float  # when it is sent next (seconds since the epoch)
    wait_s: float  # after a failed send, how long until the next one
    sends: int = 0  # sends so far

    def encode(self) -> bytes:
        n = self.notification
        return orjson.dumps(
            {
                "out_no": self.out_no,
                "body": base64.b64encode(n.body).decode(),
                "content_type": n.content_type,
                "headers": n.headers,
                "expects": n.expects,
                "next_at": self.next_at,
                "wait_s": self.wait_s,
                "sends": self.sends,
            }
        )

    @classmethod
    def decode(cls, body: bytes) -> Delivery:
        raw = orjson.loads(body)
        notification = Notification(
            base64.b64decode(raw["body"]), raw["content_type"], raw["headers"], raw["expects"]
        )
        return cls(raw["out_no"], notification, raw["next_at"], raw["wait_s"], raw["sends"])


NOTICE = "notice"  # the ledger's entries of notifications on their way
QR_PATH = "/_sandbox/qr/"
AFTER_CLOSE_DELAY_S = 0.2  # how long after the close an "after-close" payer pays
WATCH_CLOSE_S = 0.05
MOST_WAIT_S = 3600.0


class PayerBehaviour(StrEnum):
    """What the payer app does with a scanned code (`windowpay pos scan --behaviour`)."""

    PAY = "pay"  # pays at once
    DELAY = "delay"  # pays after delay_s seconds (unless the code was closed by then)
    DECLINE = "decline"  # the payment is refused (balance too low)
    NEVER = "never"  # never scans: the code expires and is closed
    AFTER_CLOSE = "after-close"  # scans, then pays just after the close and wins the race


def trade_record(trade: Trade) -> dict[str, Any]:
    record = asdict(trade)
    record["state"] = trade.state.value
    record["behaviour"] = trade.behaviour.value
    record["auth_code"] = trade.auth_code[:4] + "****" if trade.auth_code else ""
    return record


KeysT = TypeVar("KeysT")


class Gateway(Generic[KeysT]):
    """Base of the three sandbox gateways; subclasses add the protocol routes."""

    name = ""

    def __init__(self, bank: SandboxBank, keys: KeysT, merchant_id: str) -> None:
        self.bank = bank
        self.keys = keys  # the platform's side: sign answers, verify the merchant
        self.merchant_id = merchant_id
        self.base_url = ""  # set once the server listens
        self.notify_url = ""  # where the merchant takes notifications ("" sends none)
        self.notify_trust: ssl.SSLContext | None = None  # trusts an https notify_url (None: system)
        self.sent: list[tuple[str, int]] = []  # (out no, HTTP status) of every send (tests)
        self._sending: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        bank.on_settled = self._announce
        self._payers: set[asyncio.Task[None]] = set()  # the payer app's pending payments
        self.app = web.Application()
        self.app.on_cleanup.append(self._stop_sending)
        self.app.add_routes(
            [
                web.get("/_sandbox/health", self._health),
                web.get("/_sandbox/trades", self._trades),
                web.get("/_sandbox/trades/{no}", self._admin_trade),
                web.post("/_sandbox/trades/{no}/confirm", self._confirm),
                web.put("/_sandbox/faults", self._faults),
                web.post("/_sandbox/trades", self._plant),
                web.patch("/_sandbox/trades/{no}", self._alter),
                web.delete("/_sandbox/trades/{no}", self._drop),
                web.put("/_sandbox/notifications", self._notifications),
                web.get(QR_PATH + "{token}", self._qr),
                web.post("/_sandbox/payer-app/scan", self._scan),
            ]
        )

    # ---- notifications ---------------------------------------------------------------

    def notification(self, trade: Trade, refund: TradeRefund | None) -> Notification | None:
        """The channel's signed notification of a paid trade or a succeeded refund."""
        return None

    def resume(self) -> None:
        """Go on where the ledger was (after a restart, once `notify_url` is known): the
        notifications still on their way, and the trades whose time is still to come."""
        if self.notify_url:
            for key, body in self.bank.journal.load(self.bank.name, NOTICE).items():
                self._deliver(key, Delivery.decode(body))
        self.bank.resume()

    def _announce(self, trade: Trade, refund: TradeRefund | None) -> None:
        if not self.notify_url:
            return
        notification = self.notification(trade, refund)
        if notification is None:
            return
        out_no = refund.out_refund_no if refund is not None else trade.out_trade_no
        first_wait_s = NOTIFY_FIRST_WAIT_S * self.bank.timing.time_scale
        delivery = Delivery(out_no, notification, self.bank.now(), first_wait_s)
        key = f"{out_no}.{secrets.token_hex(4)}"
        self._keep(key, delivery)  # committed with the change it tells of
        self._deliver(key, delivery)

    def _deliver(self, key: str, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(self._send(key, delivery))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _keep(self, key: str, delivery: Delivery | None) -> None:
        encode = None if delivery is None else partial(Delivery.encode, delivery)
        self.bank.journal.note((self.bank.name, NOTICE, key), encode)

    async def _send(self, key: str, delivery: Delivery) -> None:
        """Post it until the merchant says "received", a bounded number of times, each
        resend after twice the wait before."""
        while delivery.sends < NOTIFY_TRIES:
            await asyncio.sleep(max(0.0, delivery.next_at - self.bank.now()))
            delivered = await self._post(delivery)
            delivery.sends += 1
            if delivered:
                break
            delivery.next_at = self.bank.now() + delivery.wait_s
            delivery.wait_s *= 2
            self._keep(key, delivery)
        else:
            log.warning("%s notification of %s given up after %d tries", self.name,
                        delivery.out_no, NOTIFY_TRIES)  # fmt: skip
        self._keep(key, None)

    async def _post(self, delivery: Delivery) -> bool:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=NOTIFY_TIMEOUT_S)
            )
        notification, out_no = delivery.notification, delivery.out_no
        try:
            async with self._session.post(
                self.notify_url,
                ssl=self.notify_trust or True,
                data=notification.body,
                headers={"Content-Type": notification.content_type, **notification.headers},
            ) as answer:
                text = await answer.text()
                self.sent.append((out_no, answer.status))
                return notification.delivered(answer.status, text)
        except (aiohttp.ClientError, TimeoutError) as error:
            self.sent.append((out_no, 0))
            log.info("%s notification of %s not delivered: %r", self.name, out_no, error)
            return False

    async def _stop_sending(self, app: web.Application) -> None:
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _notifications(self, request: web.Request) -> web.Response:
        """Admin: {"send": false} drops every notification from now on (true: sends)."""
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("send"), bool):
            return web.json_response({"error": 'a body {"send": true|false}'}, status=400)
        self.bank.notifications = body["send"]
        return web.json_response({"send": self.bank.notifications})

    def code_url(self, trade: Trade) -> str:
        """What the QR code of a trade encodes: a URL on this (loopback) sandbox."""
        return f"{self.base_url}{QR_PATH}{trade.qr_token}"

    async def _qr(self, request: web.Request) -> web.Response:
        trade = self.bank.qr_trade(request.match_info["token"])
        if trade is None:
            return web.json_response({"error": "no such code"}, status=404)
        return _json(
            {
                "gateway": self.name,
                "merchant_id": self.merchant_id,
                "out_trade_no": trade.out_trade_no,
                "amount_fen": trade.amount_fen,
                "state": trade.state.value,
            }
        )

    async def _scan(self, request: web.Request) -> web.Response:
        """The payer app: {"code_url": ..., "behaviour": "pay", "delay_s": 5, "notify": true}."""
        try:
            body = await request.json()
            behaviour = PayerBehaviour(body.get("behaviour", "pay"))
            delay_s = float(body.get("delay_s", 5.0))
            notify = bool(body.get("notify", True))
            token = str(body["code_url"]).rsplit(QR_PATH, 1)[1]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            choices = ", ".join(b.value for b in PayerBehaviour)
            return web.json_response(
                {"error": f"send code_url, behaviour ({choices}), delay_s, notify"}, status=400
            )
        trade = self.bank.qr_trade(token)
        if trade is None:
            return web.json_response({"error": "no such code"}, status=404)
        if behaviour is PayerBehaviour.NEVER:
            return _json(trade_record(trade))
        if trade.state not in (TradeState.NOTPAY, TradeState.USERPAYING):
            return web.json_response(
                {"error": f"the code can no longer be paid ({trade.state.value})"}, status=409
            )
        no = trade.out_trade_no
        self.bank.scan(no, notify=notify)
        if behaviour is PayerBehaviour.PAY:
            self.bank.pay_scanned(no)
        elif behaviour is PayerBehaviour.DECLINE:
            self.bank.decline_scanned(no)
        elif behaviour is PayerBehaviour.DELAY:
            self._later(self._pay_after(no, delay_s))
        else:
            self._later(self._pay_after_close(no))
        scanned = self.bank.trade(no)
        assert scanned is not None
        await self.bank.saved()
        return _json(trade_record(scanned))

    def _later(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._payers.add(task)
        task.add_done_callback(self._payers.discard)

    async def _pay_after(self, out_trade_no: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self.bank.pay_scanned(out_trade_no)

    async def _pay_after_close(self, out_trade_no: str) -> None:
        waited = 0.0
        while waited < MOST_WAIT_S:
            trade = self.bank.trade(out_trade_no)
            if trade is None or trade.state is not TradeState.USERPAYING:
                break
            await asyncio.sleep(WATCH_CLOSE_S)
            waited += WATCH_CLOSE_S
        trade = self.bank.trade(out_trade_no)
        if trade is not None and trade.state is TradeState.CLOSED:
            await asyncio.sleep(AFTER_CLOSE_DELAY_S)
            self.bank.pay_scanned(out_trade_no, even_if_closed=True)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"gateway": self.name, "trades": len(self.bank.trades())})

    async def _trades(self, request: web.Request) -> web.Response:
        return _json([trade_record(t) for t in self.bank.trades()])

    async def _admin_trade(self, request: web.Request) -> web.Response:
        trade = self.bank.trade(request.match_info["no"])
        if trade is None:
            return web.json_response({"error": "no such trade"}, status=404)
        return _json(trade_record(trade))

    async def _confirm(self, request: web.Request) -> web.Response:
        trade = self.bank.confirm(request.match_info["no"])
        if trade is None:
            return web.json_response({"error": "no such trade"}, status=404)
        await self.bank.saved()
        return _json(trade_record(trade))

    async def _plant(self, request: web.Request) -> web.Response:
        body = await request.json()
        trade = self.bank.plant(
            str(body["out_trade_no"]), int(body["amount_fen"]), str(body.get("store_id", ""))
        )
        await self.bank.saved()
        return _json(trade_record(trade))

    async def _alter(self, request: web.Request) -> web.Response:
        body = await request.json()
        trade = self.bank.alter(
            request.match_info["no"], amount_fen=body.get("amount_fen"), paid=body.get("paid")
        )
        if trade is None:
            return web.json_response({"error": "no such trade"}, status=404)
        await self.bank.saved()
        return _json(trade_record(trade))

    async def _drop(self, request: web.Request) -> web.Response:
        if not self.bank.drop(request.match_info["no"]):
            return web.json_response({"error": "no such trade"}, status=404)
        await self.bank.saved()
        return web.json_response({"dropped": request.match_info["no"]})

    async def _faults(self, request: web.Request) -> web.Response:
        operations = await request.json()
        allowed = {"pay", "query", "reverse", "refund"}
        if not isinstance(operations, list) or not set(operations) <= allowed:
            return web.json_response({"error": f"a list drawn from {sorted(allowed)}"}, status=400)
        self.bank.faults = set(operations)
        return web.json_response(sorted(self.bank.faults))


def _json(value: Any) -> web.Response:
    return web.Response(body=orjson.dumps(value), content_type="application/json")

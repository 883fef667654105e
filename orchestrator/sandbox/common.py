"""What every sandbox gateway shares: its ledger (a SandboxBank), its keys, and the
admin endpoints tests and operators use to look at the ledger or inject faults."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import asdict
from enum import StrEnum
from typing import Any, Generic, TypeVar

import orjson
from aiohttp import web

from orchestrator.sandbox.bank import SandboxBank, Trade, TradeState

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
        self._payers: set[asyncio.Task[None]] = set()  # the payer app's pending payments
        self.app = web.Application()
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
                web.get(QR_PATH + "{token}", self._qr),
                web.post("/_sandbox/payer-app/scan", self._scan),
            ]
        )

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
        return _json(trade_record(trade))

    async def _plant(self, request: web.Request) -> web.Response:
        body = await request.json()
        trade = self.bank.plant(
            str(body["out_trade_no"]), int(body["amount_fen"]), str(body.get("store_id", ""))
        )
        return _json(trade_record(trade))

    async def _alter(self, request: web.Request) -> web.Response:
        body = await request.json()
        trade = self.bank.alter(
            request.match_info["no"], amount_fen=body.get("amount_fen"), paid=body.get("paid")
        )
        if trade is None:
            return web.json_response({"error": "no such trade"}, status=404)
        return _json(trade_record(trade))

    async def _drop(self, request: web.Request) -> web.Response:
        if not self.bank.drop(request.match_info["no"]):
            return web.json_response({"error": "no such trade"}, status=404)
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

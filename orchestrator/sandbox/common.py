"""What every sandbox gateway shares: its ledger (a SandboxBank), its keys, and the
admin endpoints tests and operators use to look at the ledger or inject faults."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Generic, TypeVar

import orjson
from aiohttp import web

from orchestrator.sandbox.bank import SandboxBank, Trade


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
            ]
        )

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

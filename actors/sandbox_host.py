"""Hosts the in-process sandbox banks of every channel in one actor, so that their
ledgers outlive a service-point actor's restart."""

from __future__ import annotations

from orchestrator.sandbox.bank import BankReply, SandboxBank, Timing, Trade


class SandboxHost:
    def __init__(self, timing: Timing) -> None:
        self._banks = {name: SandboxBank(name, timing) for name in ("WECHAT", "ALIPAY", "UNIONPAY")}

    async def pay(
        self, channel: str, out_trade_no: str, auth_code: str, amount_fen: int, store_id: str
    ) -> BankReply:
        return await self._banks[channel].pay(out_trade_no, auth_code, amount_fen, store_id)

    async def query(self, channel: str, out_trade_no: str) -> BankReply:
        return await self._banks[channel].query(out_trade_no)

    async def reverse(self, channel: str, out_trade_no: str) -> BankReply:
        return await self._banks[channel].reverse(out_trade_no)

    async def refund(
        self, channel: str, out_trade_no: str, out_refund_no: str, amount_fen: int
    ) -> BankReply:
        return await self._banks[channel].refund(out_trade_no, out_refund_no, amount_fen)

    async def trade(self, channel: str, out_trade_no: str) -> Trade | None:
        return self._banks[channel].trade(out_trade_no)

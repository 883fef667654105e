"""The sandbox ledgers outlive their process (issue 28), as a real provider's do: every
trade, refund, QR code, used auth code and notification on its way is found where it was
by the next process, whether the last one stopped or was killed; and
`windowpay sandbox reset` starts them afresh, never under a running service."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from aiohttp import web

from orchestrator.channels.factory import build_providers
from orchestrator.channels.sandboxes import start_sandboxes
from orchestrator.cli import main as windowpay
from orchestrator.config import Config, load_config
from orchestrator.domain.states import Channel
from orchestrator.providers.port import (
    PayCall,
    QrCall,
    RefundCall,
    RefundStatus,
    TradeRef,
    TradeStatus,
)
from orchestrator.runfile import RunInfo
from orchestrator.sandbox.bank import Reply, SandboxBank, Timing, TradeState
from orchestrator.sandbox.common import PayerBehaviour
from orchestrator.sandbox.journal import FILE, Journal, LedgerFile, LedgerLock
from orchestrator.sandbox.payer import scan
from orchestrator.sandbox.trades import decode_trade
from tests.support import PROVIDER_CHANNELS, code, eventually, provider_id, small_config_data

AMOUNT = 8000
START = 1_800_000_000.0  # the banks' own clock in these tests: time moves when told


class Clock:
    def __init__(self) -> None:
        self.at = START

    def __call__(self) -> float:
        return self.at


def bank_in(ledger: Path, clock: Clock, name: str = "WECHAT") -> SandboxBank:
    """A bank over the ledger directory, as a newly started process opens it."""
    timing = Timing(confirm_after_s=10.0, refund_processing_s=10.0)
    return SandboxBank(name, timing, clock, Journal(LedgerFile(ledger)))


async def test_a_new_process_finds_the_ledger_where_the_last_one_left_it(tmp_path: Path) -> None:
    clock = Clock()
    before = bank_in(tmp_path, clock)
    await before.pay("paid", "130000000000010000", AMOUNT, "SP01")
    await before.refund("paid", "paid-r1", 100)
    await before.pay("confirming", "130000000000021111", AMOUNT, "SP01")  # due at +10 s
    await before.pay("waiting", "130000000000032222", AMOUNT, "SP01")
    await before.pay("slow-refund", "130000000000042323", AMOUNT, "SP01")
    await before.refund("slow-refund", "slow-r1", AMOUNT)  # processing until +10 s
    await before.create_qr("qr", AMOUNT, "SP01", START + 120)
    before.scan("qr")
    before.decline_scanned("qr")
    await before.saved()
    kept = before.trades()
    # The old process is gone without closing anything: a new one opens the same file.
    after = bank_in(tmp_path, clock)
    assert after.trades() == kept
    qr = after.trade("qr")
    assert qr is not None and qr.qr_token and after.qr_trade(qr.qr_token) == qr
    assert qr.state is TradeState.USERPAYING and qr.failed_tries == ("NOTENOUGH",)
    # Time passes as it did for the provider: the payer confirmed, the refund went through.
    clock.at += 11
    confirmed = await after.query("confirming")
    assert confirmed.trade is not None and confirmed.trade.state is TradeState.SUCCESS
    assert confirmed.trade.paid_at == START + 10
    refunded = await after.refund_status("slow-refund", "slow-r1")
    assert refunded.refund is not None and refunded.refund.state.value == "SUCCESS"
    # An auth code stays used, and trade numbers go on from where they were.
    again = await after.pay("again", "130000000000010000", AMOUNT, "SP01")
    assert again.trade is not None and again.trade.reason == "AUTH_CODE_USED"
    numbers = [t.trade_no for t in after.trades()] + [r.refund_no for t in kept for r in t.refunds]
    assert len(set(numbers)) == len(numbers)


async def test_what_was_told_is_not_told_again(tmp_path: Path) -> None:
    clock = Clock()
    before = bank_in(tmp_path, clock)
    told: list[str] = []
    before.on_settled = lambda trade, refund: told.append(trade.out_trade_no)
    await before.pay("paid", "130000000000010000", AMOUNT, "SP01")
    await before.pay("waiting", "130000000000022222", AMOUNT, "SP01")
    await before.saved()
    after = bank_in(tmp_path, clock)
    after.on_settled = lambda trade, refund: told.append(trade.out_trade_no)
    after.alter("paid", paid=True)  # paid again in the ledger: no second notification
    after.confirm("waiting")  # paid for the first time: notified
    assert told == ["paid", "waiting"]


async def test_an_answer_waits_for_its_change_to_be_committed(tmp_path: Path) -> None:
    bank = bank_in(tmp_path, Clock())
    reply = await bank.pay("p1", "130000000000010000", AMOUNT, "SP01")
    assert reply.reply is Reply.OK
    elsewhere = LedgerFile(tmp_path)  # another process reading the file right now
    assert set(elsewhere.load("WECHAT", "trade")) == {"p1"}
    assert set(elsewhere.load("WECHAT", "code")) == {"130000000000010000"}
    # A pay call that hangs past the client's timeout is recorded before it hangs.
    hanging = asyncio.create_task(bank.pay("p2", "130000000000025555", AMOUNT, "SP01"))
    kept = await eventually(
        lambda: asyncio.sleep(0, elsewhere.load("WECHAT", "trade")), lambda t: "p2" in t
    )
    assert decode_trade(kept["p2"]).state is TradeState.SUCCESS and not hanging.done()
    hanging.cancel()
    elsewhere.close()


class FailingOnce(LedgerFile):
    """A disk that refuses the first write (full, say), then works again."""

    failed = False

    def write(self, rows: list[tuple[tuple[str, str, str], bytes | None]]) -> None:
        if not self.failed:
            self.failed = True
            raise OSError("no space left on device")
        super().write(rows)


async def test_an_answer_whose_change_was_not_written_is_not_given(tmp_path: Path) -> None:
    bank = SandboxBank("WECHAT", journal=Journal(FailingOnce(tmp_path)))
    with pytest.raises(OSError, match="no space"):  # the gateway answers a bare 500
        await bank.pay("p1", "130000000000010000", AMOUNT, "SP01")
    reply = await bank.pay("p2", "130000000000020000", AMOUNT, "SP01")
    assert reply.reply is Reply.OK
    assert set(LedgerFile(tmp_path).load("WECHAT", "trade")) == {"p1", "p2"}  # written late


async def test_answers_given_together_share_a_commit(tmp_path: Path) -> None:
    bank = bank_in(tmp_path, Clock())
    await asyncio.gather(
        *(bank.pay(f"p{i}", f"13{i:012d}0000", AMOUNT, "SP01") for i in range(200))
    )
    assert len(bank.trades()) == 200
    assert bank.journal.commits <= 5  # not one fsync per answer


# ---- the gateways, over HTTP -----------------------------------------------------------


@dataclass
class Listener:
    """windowpay's notification listener, played by the test: refuses until told not to."""

    accept: bool = False
    refused: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    taken: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    async def take(self, request: web.Request) -> web.Response:
        seen = (await request.read(), dict(request.headers))
        if not self.accept:
            self.refused.append(seen)
            return web.Response(status=500, text="not now")
        self.taken.append(seen)
        return web.Response(text="success")


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    taker = Listener()
    app = web.Application()
    app.add_routes([web.post("/notify/{channel}", taker.take)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    taker.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield taker
    await runner.cleanup()


def qr_call(at_s: float) -> QrCall:
    at_ms = int(at_s * 1000)
    return QrCall(provider_id("Q"), AMOUNT, "SP01", "T01", "科目一", at_ms, at_ms + 600_000)


def pay_call(channel: Channel, ending: str) -> PayCall:
    now_ms = int(time.time() * 1000)
    return PayCall(provider_id(), code(channel, ending), AMOUNT, "SP01", "T01", "科目一", now_ms)


def config_for(listener: Listener, tmp_path: Path) -> Config:
    """A small deployment whose sandboxes notify `listener`, written to a file (the
    sandbox process reads it)."""
    data = small_config_data(time_scale=1.0)
    data["notify"]["public_url"] = listener.url
    data["sandbox"] = {"confirm_after_s": 1.0}
    path = tmp_path / "windowpay.toml"
    path.write_text(tomli_w.dumps(data))
    return load_config(path)


async def test_restarted_gateways_go_on_where_they_were(tmp_path: Path, listener: Listener) -> None:
    config, keys, ledger = config_for(listener, tmp_path), tmp_path / "keys", tmp_path / "sandbox"
    first = await start_sandboxes(config, keys, ledger_dir=ledger)
    providers = build_providers(config.with_base_urls(first.base_urls), keys)
    try:
        wechat = providers[Channel.WECHAT]
        paid = await wechat.create_qr(told := qr_call(time.time()))
        await scan(paid.code_url, PayerBehaviour.PAY)  # its notification is refused for now
        open_call = qr_call(time.time())
        still_open = await wechat.create_qr(open_call)
        await eventually(lambda: asyncio.sleep(0, listener.refused), bool)
        await first.stop()
        assert len(LedgerFile(ledger).load("WECHAT", "notice")) == 1  # still on its way

        listener.accept = True
        second = await start_sandboxes(config, keys, ledger_dir=ledger)
        try:
            assert second.base_urls == first.base_urls  # the codes shown still scan
            [(body, headers)] = await eventually(
                lambda: asyncio.sleep(0, listener.taken), bool, within=10
            )
            assert body == listener.refused[0][0]  # the same notification, resent
            assert headers["Wechatpay-Signature"] == listener.refused[0][1]["Wechatpay-Signature"]
            assert (await wechat.query(told.trade)).status is TradeStatus.PAID
            await scan(still_open.code_url, PayerBehaviour.PAY)
            assert (await wechat.query(open_call.trade)).status is TradeStatus.PAID
            await eventually(
                lambda: asyncio.sleep(0, LedgerFile(ledger).load("WECHAT", "notice")),
                lambda pending: len(pending) == 0,
            )
        finally:
            await second.stop()
    finally:
        await providers.close()


async def test_a_killed_sandbox_process_loses_nothing_it_answered(
    tmp_path: Path, listener: Listener
) -> None:
    listener.accept = True
    config, keys, ledger = config_for(listener, tmp_path), tmp_path / "keys", tmp_path / "sandbox"
    args = [
        sys.executable, "-m", "orchestrator.sandbox", "--config", str(config.path),
        "--keys", str(keys), "--ledger", str(ledger),
    ]  # fmt: skip

    async def started() -> tuple[asyncio.subprocess.Process, dict[Channel, str]]:
        process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert line.startswith("READY "), line
        return process, {Channel(k): v for k, v in json.loads(line[6:]).items()}

    process, urls = await started()
    providers = build_providers(config.with_base_urls(urls), keys)
    try:
        paid: dict[Channel, PayCall] = {}
        confirming: dict[Channel, PayCall] = {}
        refunds: dict[Channel, RefundCall] = {}
        codes: dict[Channel, tuple[QrCall, str]] = {}
        for channel in PROVIDER_CHANNELS:
            provider = providers[channel]
            paid[channel] = pay_call(channel, "0000")
            await provider.pay(paid[channel])  # UnionPay: accepted, paid by the query
            answer = await eventually(
                lambda p=provider, c=paid[channel]: p.query(c.trade),
                lambda a: a.status is TradeStatus.PAID,
            )
            trade = TradeRef(
                paid[channel].out_trade_no, AMOUNT, paid[channel].at_ms, answer.trade_no
            )
            refunds[channel] = RefundCall(trade, provider_id("R"), 100, paid[channel].at_ms)
            refunded = await provider.refund(refunds[channel])  # UnionPay: accepted
            assert refunded.status in (RefundStatus.SUCCEEDED, RefundStatus.PENDING)
            confirming[channel] = pay_call(channel, "1111")  # the payer confirms in 1 s
            assert (await provider.pay(confirming[channel])).status is TradeStatus.CONFIRMING
            call = qr_call(time.time())
            codes[channel] = (call, (await provider.create_qr(call)).code_url)
        process.kill()  # nothing stops cleanly
        await process.wait()

        process, again = await started()
        assert again == urls
        for channel in PROVIDER_CHANNELS:
            provider = providers[channel]
            assert (await provider.query(paid[channel].trade)).status is TradeStatus.PAID
            await eventually(
                lambda p=provider, r=refunds[channel]: p.refund_query(r),
                lambda a: a.status is RefundStatus.SUCCEEDED,
            )
            await eventually(
                lambda p=provider, c=confirming[channel]: p.query(c.trade),
                lambda a: a.status is TradeStatus.PAID,
            )
            call, url = codes[channel]
            await scan(url, PayerBehaviour.PAY)
            assert (await provider.query(call.trade)).status is TradeStatus.PAID
    finally:
        await providers.close()
        if process.returncode is None:
            process.kill()
            await process.wait()


# ---- windowpay sandbox reset -----------------------------------------------------------


async def ledger_with_trades(data_dir: Path) -> None:
    journal = Journal(LedgerFile(data_dir / "sandbox"))
    for name in ("WECHAT", "ALIPAY"):
        bank = SandboxBank(name, journal=journal)
        await bank.pay("p1", "130000000000010000", AMOUNT, "SP01")
    await journal.close()


async def test_reset_refuses_while_the_ledger_is_served(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await ledger_with_trades(tmp_path)
    lock = LedgerLock(tmp_path / "sandbox")
    lock.take(wait_s=0)  # a sandbox process serving from it
    try:
        assert windowpay(["sandbox", "reset", "--data-dir", str(tmp_path)]) == 1
        assert "stop windowpay serve" in capsys.readouterr().err
    finally:
        lock.release()
    run = RunInfo("127.0.0.1:1", "redis://x", "", None, {}, pid=os.getpid())
    run.write(tmp_path)  # a service running from this data dir (this very process)
    assert windowpay(["sandbox", "reset", "--data-dir", str(tmp_path)]) == 1
    assert f"pid {os.getpid()}" in capsys.readouterr().err
    assert (tmp_path / "sandbox" / FILE).exists()


async def test_reset_starts_the_ledgers_afresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await ledger_with_trades(tmp_path)
    assert windowpay(["sandbox", "reset", "--data-dir", str(tmp_path), "--channel", "alipay"]) == 0
    assert "alipay: 4 ledger entries forgotten" in capsys.readouterr().out
    ledger = LedgerFile(tmp_path / "sandbox")
    kept: dict[str, Any] = {n: ledger.load(n, "trade") for n in ("WECHAT", "ALIPAY")}
    ledger.close()
    assert (set(kept["WECHAT"]), kept["ALIPAY"]) == ({"p1"}, {})
    assert windowpay(["sandbox", "reset", "--data-dir", str(tmp_path)]) == 0
    assert not (tmp_path / "sandbox" / FILE).exists()
    assert SandboxBank("WECHAT", journal=Journal(LedgerFile(tmp_path / "sandbox"))).trades() == []

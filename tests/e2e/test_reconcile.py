"""Daily reconciliation through the real command, against the sandboxes' real bills:
the day's mixed traffic so far reconciles with no unexplained difference; one planted
difference of each kind is found and classified; late successes are healed by refund,
once, however often the day is run again."""

import asyncio
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.e2e.conftest import Deployed
from tests.support import PROVIDER_CHANNELS, eventually, new_id

TODAY = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()


async def reconcile(deployed: Deployed, report: Path) -> tuple[int, dict[str, Any], str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "reconcile", "--date", TODAY,
        "--data-dir", str(deployed.data_dir), "--json", str(report),
        "--csv", str(report.with_suffix(".csv")),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode in (0, 1), err.decode()
    return process.returncode, json.loads(report.read_text()), out.decode()


async def paid(deployed: Deployed, channel: Channel, ending: str = "0000") -> pb.Order:
    order = await deployed.create(deployed.window())
    return await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, channel, ending), timeout=30
    )


async def test_reconciliation_finds_heals_and_is_idempotent(
    deployed: Deployed, tmp_path: Path
) -> None:
    for channel in PROVIDER_CHANNELS:  # the day has traffic on every provider, run alone too
        assert (await paid(deployed, channel)).state == pb.PAID
    code, report, out = await reconcile(deployed, tmp_path / "clean.json")
    assert (code, report["differences"]) == (0, []), out
    assert report["unexplained"] == 0
    assert set(report["providers"]) == {"WECHAT", "ALIPAY", "UNIONPAY"}
    assert report["providers"]["WECHAT"]["matched_count"] > 0
    assert "every difference explained or healed" in out

    # Plant one difference of each kind in the providers' ledgers.
    wechat, alipay = (
        deployed.sandboxes.bank(Channel.WECHAT),
        deployed.sandboxes.bank(Channel.ALIPAY),
    )
    unionpay = deployed.sandboxes.bank(Channel.UNIONPAY)
    lost = (await paid(deployed, Channel.WECHAT)).attempts[0].attempt_id
    wechat.drop(lost)
    ghost = new_id("GHOST")
    alipay.plant(ghost, 4321)
    skewed = (await paid(deployed, Channel.UNIONPAY)).attempts[0].attempt_id
    unionpay.alter(skewed, amount_fen=1)
    declined = (await paid(deployed, Channel.WECHAT, "3333")).attempts[0].attempt_id
    wechat.alter(declined, paid=True)
    order = await deployed.create(deployed.window())
    first = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, Channel.ALIPAY, "3333"), timeout=30
    )
    second = await deployed.terminal_of_order(order).Pay(
        deployed.pay_request(order, Channel.ALIPAY), timeout=30
    )
    assert second.state == pb.PAID
    twice = first.attempts[0].attempt_id
    alipay.alter(twice, paid=True)

    code, report, out = await reconcile(deployed, tmp_path / "planted.json")
    assert code == 1
    found = {(d["kind"], d["out_trade_no"]): d for d in report["differences"]}
    assert set(found) == {
        ("missing_at_provider", lost),
        ("missing_at_windowpay", ghost),
        ("amount_mismatch", skewed),
        ("state_mismatch", declined),
        ("duplicate_success", twice),
    }, out
    assert found[("missing_at_windowpay", ghost)]["provider_amount_fen"] == 4321
    assert found[("amount_mismatch", skewed)]["provider_amount_fen"] == 1
    assert found[("amount_mismatch", skewed)]["windowpay_amount_fen"] == 11000
    late = {("state_mismatch", declined), ("duplicate_success", twice)}
    assert not any(found[k]["resolved"] for k in found)  # no money is back yet
    assert all("being refunded automatically" in found[k]["action"] for k in late)
    assert report["unexplained"] == 5
    assert (tmp_path / "planted.csv").read_text().count("\n") == 6  # header + 5

    # The heals go through: each late success is refunded, once.
    for bank, attempt_id in ((wechat, declined), (alipay, twice)):
        trade = await eventually(
            lambda b=bank, a=attempt_id: _trade(b, a),
            lambda t: t is not None and t.refunded_fen == t.amount_fen,
        )
        assert trade is not None and trade.refunded_fen == trade.amount_fen
    final = await eventually(
        lambda: deployed.get(order.order_id),
        lambda o: o.attempts[0].state == pb.LATE_SUCCESS_REFUNDED,
    )
    assert final.state == pb.PAID

    code, report, out = await reconcile(deployed, tmp_path / "again.json")
    assert code == 1
    assert {(d["kind"], d["out_trade_no"]) for d in report["differences"]} == {
        ("missing_at_provider", lost),
        ("missing_at_windowpay", ghost),
        ("amount_mismatch", skewed),
    }
    for bank, attempt_id in ((wechat, declined), (alipay, twice)):
        trade = bank.trade(attempt_id)
        assert trade is not None and len(trade.refunds) == 1  # not refunded twice
    # The record holds the day's latest run only: the healed ones gone, nothing twice.
    async with await psycopg.AsyncConnection.connect(deployed.database_url) as conn:
        kept = await (
            await conn.execute(
                "SELECT kind, out_trade_no, resolved FROM reconciliation_differences "
                "WHERE day = %s",
                (date.fromisoformat(TODAY),),
            )
        ).fetchall()
        providers = await (
            await conn.execute(
                "SELECT count(*) FROM reconciliations WHERE day = %s", (date.fromisoformat(TODAY),)
            )
        ).fetchone()
    assert sorted(kept) == sorted([
        ("missing_at_provider", lost, False),
        ("missing_at_windowpay", ghost, False),
        ("amount_mismatch", skewed, False),
    ])  # fmt: skip
    assert providers == (3,)


async def test_an_unrefunded_late_success_fails_the_run_until_a_rerun_heals_it(
    deployed: Deployed, tmp_path: Path
) -> None:
    bank = deployed.sandboxes.bank(Channel.WECHAT)
    declined = (await paid(deployed, Channel.WECHAT, "3333")).attempts[0]
    bank.alter(declined.attempt_id, paid=True)  # the payer was charged after all
    bank.faults = {"refund"}  # and the refund cannot get through
    try:
        code, report, out = await reconcile(deployed, tmp_path / "stuck.json")
        [difference] = [
            d for d in report["differences"] if d["out_trade_no"] == declined.attempt_id
        ]
        assert code == 1 and not difference["resolved"], out
        code, report, out = await reconcile(deployed, tmp_path / "still.json")
        [difference] = [
            d for d in report["differences"] if d["out_trade_no"] == declined.attempt_id
        ]
        assert code == 1 and "PENDING" in difference["detail"], out  # never "explained"
    finally:
        bank.faults = set()
    await eventually(
        lambda: _trade(bank, declined.attempt_id),
        lambda t: t is not None and t.refunded_fen == t.amount_fen,
    )
    await eventually(
        lambda: reconcile(deployed, tmp_path / "healed.json"),
        lambda result: (
            not any(d["out_trade_no"] == declined.attempt_id for d in result[1]["differences"])
        ),
        within=120,
        every=1.0,
    )
    trade = bank.trade(declined.attempt_id)
    assert trade is not None and len(trade.refunds) == 1


async def _trade(bank: Any, attempt_id: str) -> Any:
    return bank.trade(attempt_id)


async def test_the_settlement_command(deployed: Deployed) -> None:
    for channel in (Channel.WECHAT, Channel.CASH):  # the day's traffic, also when run alone
        assert (await paid(deployed, channel)).state == pb.PAID
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "settlement", "--date", TODAY,
        "--data-dir", str(deployed.data_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    text = out.decode()
    assert text.startswith(f"settlement of {TODAY}") and "total: taken" in text
    assert "WECHAT" in text and "CASH" in text

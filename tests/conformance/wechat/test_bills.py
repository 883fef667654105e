"""The trade bill (申请交易账单 and its download) against the published answers and the
real bill files: a day without trades, a bill not made yet, a file that does not match
its hash, and the real bills read back; and how the reconcile job takes each."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from orchestrator.channels.wechat.bill import parse_wechat
from orchestrator.domain.states import Channel
from orchestrator.providers.port import BillNotReady, OutcomeUnknown
from orchestrator.reconcile.job import reconcile
from tests.conformance.wechat.conftest import BILLS, Gateway, adapter_for, error_sample, sample

DAY = date(2021, 1, 28)
REAL = BILLS / "wechat_tradebill_27col_2021-01-28.csv"


def bill_answer(content: bytes) -> bytes:
    """The published 申请交易账单 answer, its hash_value the SHA1 of `content`."""
    answer = json.loads(sample("answers/tradebill.json"))
    answer["hash_value"] = hashlib.sha1(content, usedforsecurity=False).hexdigest()
    return json.dumps(answer).encode()


async def test_the_real_bill_is_downloaded_and_read(gateway: Gateway) -> None:
    content = REAL.read_bytes()
    gateway.answer(200, bill_answer(content))
    gateway.answer(200, content)  # the download (unsigned, checked by its hash)
    bill = await adapter_for(gateway).bill(DAY)
    rows = parse_wechat(bill)
    assert [r.out_trade_no for r in rows] == [
        "S20210128170702357723", "S20210128153505214586", "S20210128165824499930",
    ]  # fmt: skip
    assert {r.amount_fen for r in rows} == {1} and all(r.kept for r in rows)
    ask, download = gateway.sent
    assert ask.target == "/v3/bill/tradebill?bill_date=2021-01-28&bill_type=ALL"
    assert download.target.startswith("/v3/billdownload/file?token=")


async def test_a_file_that_does_not_match_its_hash_is_no_bill(gateway: Gateway) -> None:
    gateway.answer(200, sample("answers/tradebill.json"))  # as published: another file's hash
    gateway.answer(200, REAL.read_bytes())
    with pytest.raises(OutcomeUnknown, match="SHA1"):
        await adapter_for(gateway).bill(DAY)


def test_the_older_24_column_bill_reads_too() -> None:
    rows = parse_wechat((BILLS / "wechat_bill_24col_micropay_2014.csv").read_bytes())
    assert [(r.out_trade_no, r.amount_fen) for r in rows] == [("1415640626", 1), ("1415635270", 1)]


async def test_a_day_without_trades_is_an_empty_bill(gateway: Gateway) -> None:
    """NO_STATEMENT_EXIST means no trades that day: nothing to reconcile, no failure."""
    gateway.answer(*error_sample("NO_STATEMENT_EXIST"))
    assert parse_wechat(await adapter_for(gateway).bill(DAY)) == []


async def test_a_bill_being_made_is_not_ready(gateway: Gateway) -> None:
    gateway.answer(*error_sample("STATEMENT_CREATING"))
    with pytest.raises(BillNotReady, match="STATEMENT_CREATING"):
        await adapter_for(gateway).bill(DAY)


@pytest.mark.parametrize(
    ("code", "rows"), [("NO_STATEMENT_EXIST", 0), ("STATEMENT_CREATING", None)]
)
async def test_the_reconcile_job_tells_no_trades_and_not_yet_from_a_failure(
    gateway: Gateway, code: str, rows: int | None
) -> None:
    gateway.answer(*error_sample(code))
    report = await reconcile(
        DAY, [], {Channel.WECHAT: adapter_for(gateway)}, ZoneInfo("Asia/Shanghai"), heal=None
    )
    assert report.failures == {} and report.unexplained == 0
    if rows is None:  # not made yet: reported as such, to be run again
        assert Channel.WECHAT in report.not_ready and Channel.WECHAT not in report.matches
        assert report.to_json()["not_ready"]["WECHAT"].startswith("bill not ready yet")
    else:  # no trades: matched, and nothing differs
        assert report.matches[Channel.WECHAT].bill_rows == rows and not report.not_ready

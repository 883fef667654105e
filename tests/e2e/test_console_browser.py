"""The console in a real browser (Debian's headless Chromium driven by Playwright)
against the e2e deployment: orders made and paid over gRPC, drained into the record,
seen, searched, cancelled and exported through the console. One browser per session."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from orchestrator.console.accounts import ensure_dev_accounts
from orchestrator.console.app import ConsoleSettings
from orchestrator.console.commands import RouterCommands
from orchestrator.console.server import playbook_s, start_console
from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.reconcile import recorded as reconciliations
from orchestrator.reconcile.job import LISTED, Outcome, Report
from orchestrator.reconcile.matcher import Difference, Kind, Match
from tests.e2e.conftest import Deployed
from tests.support import eventually

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# Kept after the run for a person to look at (pytest's own temporary folders are pruned).
OUTPUT = Path(os.environ.get("WINDOWPAY_TEST_OUTPUT", Path(__file__).parents[2] / "test-output"))

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs chromium")


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        await browser.close()


@dataclass
class Office:
    url: str
    passwords: dict[str, str]
    point: str
    windows: list[str]  # the first service point's windows; the clerk sits at the first


@pytest.fixture
async def office(deployed: Deployed, tmp_path: Path) -> AsyncIterator[Office]:
    """A console of the deployment (fresh throttles per test) on a free port."""
    config = deployed.config.with_settings(console_port=0)
    point = config.deployment.service_points[0].id
    windows = sorted(w for w, sp in config.deployment.window_service_point.items() if sp == point)
    staff_file = tmp_path / "pki" / "staff.json"
    passwords = ensure_dev_accounts(staff_file, point, windows[0])
    assert passwords is not None
    async with AsyncExitStack() as stack:
        pool = _pool(deployed.database_url)
        await pool.open()
        stack.push_async_callback(pool.close)
        url = await start_console(
            config,
            pool,
            RouterCommands(deployed.server.door.router),
            staff_file,
            stack,
            settings=ConsoleSettings(zone=config.settings.zone, live_every_s=0.3,
                                     payer_lookups_per_minute=6,
                                     playbook_s=playbook_s(config)),
        )  # fmt: skip
        yield Office(url, passwords, point, windows)


def _pool(database_url: str) -> Any:
    from psycopg_pool import AsyncConnectionPool

    return AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False)


@pytest.fixture
async def context(chromium: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await chromium.new_context(viewport=PHONE)
    yield ctx
    await ctx.close()


async def sign_in(page: Page, office: Office, username: str) -> None:
    await page.goto(f"{office.url}/signin")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", office.passwords[username])
    await page.click("button[type=submit]")
    await expect(page.get_by_test_id("who")).to_contain_text(username)


async def recorded(deployed: Deployed, order_id: str, state: str = "") -> bool:
    async with await psycopg.AsyncConnection.connect(deployed.database_url) as conn:
        row = await (
            await conn.execute("SELECT state FROM orders WHERE order_id = %s", (order_id,))
        ).fetchone()
    return row is not None and (not state or row[0] == state)


async def wait_recorded(deployed: Deployed, order_id: str, state: str = "") -> None:
    async def probe() -> bool:
        return await recorded(deployed, order_id, state)

    await eventually(probe, bool, within=60, every=0.3)


async def pay(deployed: Deployed, order: pb.Order, channel: Channel = Channel.CASH) -> pb.Order:
    terminal = deployed.terminal_for(deployed.terminal_of(order.window_id))
    paid = await terminal.Pay(deployed.pay_request(order, channel), timeout=30)
    assert paid.state == pb.PAID
    return paid


async def test_sign_in_and_sign_out(context: BrowserContext, office: Office) -> None:
    page = await context.new_page()
    await page.goto(f"{office.url}/today")
    await expect(page).to_have_url(re.compile(r"/signin$"))
    await page.fill("input[name=username]", "director")
    await page.fill("input[name=password]", "wrong-password")
    await page.click("button[type=submit]")
    await expect(page.get_by_test_id("error")).to_contain_text("Wrong username or password")
    await sign_in(page, office, "director")
    await expect(page.locator("h1")).to_contain_text("Today")
    cookie = next(c for c in await context.cookies() if c["name"] == "wp_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    await page.click("text=Sign out")
    await expect(page).to_have_url(re.compile(r"/signin$"))
    await page.goto(f"{office.url}/orders")
    await expect(page).to_have_url(re.compile(r"/signin$"))


async def test_each_role_sees_only_its_scope(
    deployed: Deployed, chromium: Browser, office: Office
) -> None:
    mine = await deployed.create(office.windows[0], business_no=f"B-{uuid.uuid4().hex[:10]}")
    other = await deployed.create(office.windows[1])
    await wait_recorded(deployed, mine.order_id)
    await wait_recorded(deployed, other.order_id)

    clerk = await chromium.new_context(viewport=PHONE)
    page = await clerk.new_page()
    await sign_in(page, office, "clerk")
    response = await page.goto(f"{office.url}/orders/{mine.order_id}")
    assert response is not None and response.status == 200
    response = await page.goto(f"{office.url}/orders/{other.order_id}")
    assert response is not None and response.status == 403
    await expect(page.get_by_test_id("error")).to_contain_text("outside your scope")
    await clerk.close()

    auditor = await chromium.new_context(viewport=PHONE)
    page = await auditor.new_page()
    await sign_in(page, office, "auditor")
    await page.goto(f"{office.url}/orders/{other.order_id}")
    await expect(page.get_by_test_id("payer")).to_have_text("王*")  # the e2e payer is 王五
    await expect(page.get_by_test_id("cancel-form")).to_have_count(0)
    await auditor.close()


async def test_live_totals_change_after_a_payment_over_grpc(
    deployed: Deployed, context: BrowserContext, office: Office
) -> None:
    page = await context.new_page()
    await sign_in(page, office, "director")
    figure = page.locator('[data-figure="payments"]')
    await expect(page.locator("#live")).to_contain_text("Live")  # the event stream is open
    before = int(await figure.inner_text())
    await pay(deployed, await deployed.create(deployed.window()))
    # No reload: the server pushes the new figures once the record has the payment.
    await expect(figure).not_to_have_text(str(before), timeout=60_000)
    assert int(await figure.inner_text()) > before


async def test_search_finds_an_order_with_its_journal_and_a_head_cancels_one(
    deployed: Deployed, context: BrowserContext, office: Office
) -> None:
    business_no = f"B-{uuid.uuid4().hex[:10]}"
    paid = await pay(deployed, await deployed.create(office.windows[1], business_no=business_no))
    unpaid = await deployed.create(office.windows[1])
    await wait_recorded(deployed, paid.order_id, "PAID")
    await wait_recorded(deployed, unpaid.order_id)
    page = await context.new_page()
    await sign_in(page, office, "head")
    await page.click("text=Orders")
    await page.fill("input[name=business_no]", business_no)
    await page.click("text=Search")
    await page.click(f"text={paid.order_id}")
    await expect(page.get_by_test_id("order-state")).to_have_text("PAID")
    journal = page.get_by_test_id("journal")
    await expect(journal).to_contain_text("created")
    await expect(journal).to_contain_text(deployed.terminal_of(office.windows[1]))
    await expect(page.get_by_test_id("cancel-form")).to_have_count(0)  # paid: nothing to cancel

    await page.goto(f"{office.url}/orders/{unpaid.order_id}")
    await page.fill("input[name=reason]", "case withdrawn by the applicant")
    await page.click("text=Cancel order")
    assert (await deployed.get(unpaid.order_id)).state == pb.CANCELLED  # through the actor
    await wait_recorded(deployed, unpaid.order_id, "CANCELLED")
    await page.reload()
    await expect(page.get_by_test_id("order-state")).to_have_text("CANCELLED")
    await expect(page.get_by_test_id("journal")).to_contain_text("[console: head]")


async def test_the_settlement_csv_matches_the_settlement_rpc(
    deployed: Deployed, context: BrowserContext, office: Office
) -> None:
    paid = await pay(deployed, await deployed.create(deployed.window()), Channel.WECHAT)
    await wait_recorded(deployed, paid.order_id, "PAID")
    page = await context.new_page()
    await sign_in(page, office, "director")
    await page.click("text=Reports")
    day = await page.input_value("form[action='/reports/settlement.csv'] input[name=day]")
    async with page.expect_download() as download_info:
        await page.click("text=Download CSV >> nth=0")
    download = await download_info.value
    exported = list(csv.DictReader(io.StringIO(Path(await download.path()).read_text())))
    settlement = await deployed.backoffice.GetSettlement(pb.SettlementRequest(date=day))
    expected = [
        {
            "service_point_id": r.service_point_id,
            "window_id": r.window_id,
            "channel": pb.Channel.Name(r.channel),
            "payments": str(r.payments),
            "payments_yuan": f"{r.payments_fen // 100}.{r.payments_fen % 100:02d}",
            "refunds": str(r.refunds),
            "refunds_yuan": f"{r.refunds_fen // 100}.{r.refunds_fen % 100:02d}",
        }
        for r in settlement.rows
    ]
    assert [{k: row[k] for k in expected[0]} for row in exported] == expected


async def test_a_director_sees_a_difference_not_healed_and_its_csv(
    deployed: Deployed, context: BrowserContext, office: Office
) -> None:
    """A day of its own (long past), so that a real `windowpay reconcile` of today run by
    another test neither replaces nor is replaced by it."""
    day = date(2001, 1, 1) + timedelta(days=uuid.uuid4().int % 3000)
    ghost = f"GHOST-{uuid.uuid4().hex[:8]}"
    difference = Difference(Kind.MISSING_AT_WINDOWPAY, Channel.ALIPAY, ghost, "", 0, 4321,
                            "a payment windowpay never made")  # fmt: skip
    report = Report(
        day,
        matches={Channel.ALIPAY: Match(Channel.ALIPAY, day, bill_rows=1)},
        outcomes=[Outcome(difference, LISTED, False)],
    )
    async with await psycopg.AsyncConnection.connect(deployed.database_url) as conn:
        await reconciliations.save(conn, report, 1)
    page = await context.new_page()
    await sign_in(page, office, "director")
    await page.click("text=Supervision")
    await expect(page.get_by_test_id("unhealed")).to_contain_text(ghost)
    await page.click("text=Reports")
    form = page.locator("form[action='/reports/reconciliation.csv']")
    await form.locator("input[name=day]").fill(day.isoformat())
    async with page.expect_download() as download_info:
        await form.locator("button").click()
    download = await download_info.value
    rows = list(csv.DictReader(io.StringIO(Path(await download.path()).read_text())))
    assert [(r["row"], r["kind"], r["out_trade_no"], r["provider_yuan"]) for r in rows] == [
        ("payments", "matched", "", "0.00"),
        ("refunds", "matched", "", "0.00"),
        ("difference", "missing_at_windowpay", ghost, "43.21"),
    ]


async def test_payer_page_without_javascript(
    deployed: Deployed, chromium: Browser, office: Office
) -> None:
    paid = await pay(deployed, await deployed.create(deployed.window()), Channel.ALIPAY)

    async def issued() -> pb.Receipt | None:
        try:
            request = pb.GetReceiptRequest(order_id=paid.order_id)
            return await deployed.receipts.GetReceipt(request, timeout=10)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return None  # issued just after the payment

    receipt = await eventually(issued, lambda r: r is not None, within=60, every=0.3)
    assert receipt is not None

    async def in_record() -> bool:
        async with await psycopg.AsyncConnection.connect(deployed.database_url) as conn:
            row = await (
                await conn.execute("SELECT 1 FROM receipts WHERE order_id = %s", (paid.order_id,))
            ).fetchone()
        return row is not None

    await eventually(in_record, bool, within=60, every=0.3)
    context = await chromium.new_context(viewport=PHONE, java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{office.url}/payer/receipt")
    await page.fill("input[name=code]", receipt.receipt_code)
    await page.fill("input[name=no]", receipt.receipt_no)
    await page.fill("input[name=check]", receipt.check_code)
    await page.click("text=Look up")
    await expect(page.get_by_test_id("total")).to_have_text(
        f"{paid.amount_fen // 100}.{paid.amount_fen % 100:02d}"
    )
    await page.click("text=printable")
    await expect(page.locator("body")).to_contain_text(receipt.receipt_no)

    base = f"{office.url}/payer/receipt?code={receipt.receipt_code}&no={receipt.receipt_no}"
    response = await page.goto(f"{base}&check=ZZZZZZ")
    assert response is not None and response.status == 404
    await expect(page.get_by_test_id("not-found")).to_contain_text("Not found")
    statuses = []
    for _ in range(6):
        response = await page.goto(f"{base}&check=ZZZZZZ")
        assert response is not None
        statuses.append(response.status)
    assert statuses[-1] == 429  # 6 a minute per address, 3 used above
    await context.close()


async def test_screenshots_at_phone_and_desktop_sizes(
    deployed: Deployed, chromium: Browser, office: Office
) -> None:
    shots_dir = OUTPUT / "console-screenshots"
    shots_dir.mkdir(parents=True, exist_ok=True)
    for old in shots_dir.glob("*.png"):
        old.unlink()
    paid = await pay(deployed, await deployed.create(deployed.window()), Channel.WECHAT)
    await wait_recorded(deployed, paid.order_id, "PAID")
    for name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        context = await chromium.new_context(viewport=viewport)
        page = await context.new_page()
        await sign_in(page, office, "director")
        await expect(page.locator('[data-figure="payments_fen"]')).to_be_visible()
        await expect(page.locator(".chart svg")).to_be_visible()
        await page.screenshot(path=shots_dir / f"today-{name}.png", full_page=True)
        await page.goto(f"{office.url}/orders/{paid.order_id}")
        await expect(page.get_by_test_id("journal")).to_be_visible()
        await page.screenshot(path=shots_dir / f"order-{name}.png", full_page=True)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"] + 1, f"{name}: the page scrolls sideways ({width}px)"
        await page.goto(f"{office.url}/payer/receipt")
        await expect(page.locator("input[name=check]")).to_be_visible()
        await page.screenshot(path=shots_dir / f"payer-{name}.png", full_page=True)
        await context.close()
    shots = sorted(shots_dir.glob("*.png"))
    assert len(shots) == 6 and all(shot.stat().st_size > 5000 for shot in shots)

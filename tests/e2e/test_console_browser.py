"""The console in a real browser (Debian's headless Chromium driven by Playwright, with
Debian's CJK fonts) against the e2e deployment: orders made, paid and refunded over
gRPC, drained into the record, then every page seen in Chinese and in English, on a
360 px phone and on a desktop: its words, its Chinese glyphs (tofu fails), nothing
scrolling sideways, axe-core's accessibility rules, and a screenshot kept in
test-output/. Without the browser, its fonts or axe-core these tests fail; they never
skip. One browser per session."""

from __future__ import annotations

import csv
import io
import os
import re
import struct
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from orchestrator.console.accounts import ensure_dev_accounts
from orchestrator.console.commands import RouterCommands
from orchestrator.console.pages import Office as OfficeInfo
from orchestrator.console.server import settings_of, start_console
from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.reconcile import recorded as reconciliations
from orchestrator.reconcile.job import LISTED, Outcome, Report
from orchestrator.reconcile.matcher import Difference, Kind, Match
from tests.e2e.conftest import Deployed
from tests.support import eventually

ROOT = Path(__file__).parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 900}
LOCALES = {"zh_CN": "zh-CN", "en": "en-US"}  # the browser's own language, per page language
# Kept after the run for a person to look at (pytest's own temporary folders are pruned).
OUTPUT = Path(os.environ.get("WINDOWPAY_TEST_OUTPUT", ROOT / "test-output"))
SHOTS = OUTPUT / "console-screenshots"
# Chinese names for the e2e deployment's service points (its config says "test point G1").
PLACES = {"G1": "车管所本部", "G2": "五华区分所", "G3": "盘龙区分所"}


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    if not AXE.is_file():
        pytest.fail(f"{AXE.relative_to(ROOT)} is missing: `make browser` installs axe-core")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        await browser.close()


@dataclass
class Office:
    url: str
    passwords: dict[str, str]
    point: str
    windows: list[str]  # the first service point's windows; the clerk sits at the first
    lookups_per_minute: int = 40


@pytest.fixture
async def office(deployed: Deployed, tmp_path: Path) -> AsyncIterator[Office]:
    """A console of the deployment (fresh throttles per test) on a free port."""
    config = deployed.config.with_settings(console_port=0)
    point = config.deployment.service_points[0].id
    windows = sorted(w for w, sp in config.deployment.window_service_point.items() if sp == point)
    staff_file = tmp_path / "pki" / "staff.json"
    passwords = ensure_dev_accounts(staff_file, point, windows[0])
    assert passwords is not None
    info = OfficeInfo.of(config)
    info = OfficeInfo(info.fees, {**info.places, **PLACES}, info.contact)
    settings = settings_of(config, live_every_s=0.3, payer_lookups_per_minute=40, office=info)
    async with AsyncExitStack() as stack:
        pool = _pool(deployed.database_url)
        await pool.open()
        stack.push_async_callback(pool.close)
        commands = RouterCommands(deployed.server.door.router)
        url = await start_console(config, pool, commands, staff_file, stack, settings=settings)
        yield Office(url, passwords, point, windows)


def _pool(database_url: str) -> Any:
    from psycopg_pool import AsyncConnectionPool

    return AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False)


async def new_context(
    browser: Browser, language: str = "zh_CN", viewport: dict[str, int] = PHONE, **kw: Any
) -> BrowserContext:
    """A browser whose own language asks for the page's (its Accept-Language)."""
    return await browser.new_context(viewport=viewport, locale=LOCALES[language], **kw)


@pytest.fixture
async def context(chromium: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await new_context(chromium)
    yield ctx
    await ctx.close()


async def sign_in(page: Page, office: Office, username: str) -> None:
    await page.goto(f"{office.url}/signin")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", office.passwords[username])
    await page.get_by_test_id("signin").click()
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


async def receipt_in_record(deployed: Deployed, order_id: str) -> pb.Receipt:
    async def issued() -> pb.Receipt | None:
        try:
            request = pb.GetReceiptRequest(order_id=order_id)
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
                await conn.execute("SELECT 1 FROM receipts WHERE order_id = %s", (order_id,))
            ).fetchone()
        return row is not None

    await eventually(in_record, bool, within=60, every=0.3)
    return receipt


def lookup(receipt: pb.Receipt) -> str:
    return f"code={receipt.receipt_code}&no={receipt.receipt_no}&check={receipt.check_code}"


def yuan(fen: int, grouped: bool = True) -> str:
    return f"{fen // 100:,}.{fen % 100:02d}" if grouped else f"{fen // 100}.{fen % 100:02d}"


# ---- what every page must pass ---------------------------------------------------------

# Whether Chinese text is drawn with real glyphs: the page's own CJK face (console.css,
# "WP Han") is available, every sampled run of Han characters is as wide as a full-width
# glyph (1 em each) in the font its element uses, and different characters draw
# differently (the boxes of a missing glyph, "tofu", all look alike).
GLYPHS = """
async (probe) => {
  await document.fonts.ready;
  const face = '16px "WP Han"';
  await document.fonts.load(face, '缴费');
  const runs = [];
  if (probe) {
    runs.push({font: getComputedStyle(document.body).font, chars: probe});
  } else {
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode() && runs.length < 30) {
      const parent = walker.currentNode.parentElement;
      const han = (walker.currentNode.textContent.match(/[\\u4e00-\\u9fff]/g) || []).slice(0, 6);
      if (han.length && parent && parent.getClientRects().length) {
        runs.push({font: getComputedStyle(parent).font, chars: han.join('')});
      }
    }
  }
  const measured = runs.map(({font, chars}) => {
    const span = document.createElement('span');
    span.style.font = font;
    span.style.whiteSpace = 'nowrap';
    span.style.letterSpacing = 'normal';
    span.textContent = chars;
    document.body.appendChild(span);
    const width = span.getBoundingClientRect().width;
    const size = parseFloat(getComputedStyle(span).fontSize);
    span.remove();
    return {chars, em: width / ([...chars].length * size)};
  });
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 48;
  const ctx = canvas.getContext('2d');
  const drawn = [...(probe || '缴费号证')].map((c) => {
    ctx.clearRect(0, 0, 48, 48);
    ctx.font = '40px ' + getComputedStyle(document.body).fontFamily;
    ctx.fillText(c, 2, 40);
    return canvas.toDataURL();
  });
  return {
    face: document.fonts.check(face, '缴费'),
    runs: measured,
    distinct: new Set(drawn).size === drawn.length,
  };
}
"""

OVERFLOW = """
() => {
  const wide = [];
  const doc = document.scrollingElement;
  if (doc.scrollWidth > doc.clientWidth) wide.push(`page ${doc.scrollWidth}>${doc.clientWidth}`);
  for (const el of document.querySelectorAll('body *')) {
    if (!el.getClientRects().length) continue;
    const name = el.tagName + (el.dataset.testid ? '#' + el.dataset.testid : '');
    if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0 &&
        ['auto', 'scroll'].includes(getComputedStyle(el).overflowX)) {
      wide.push(`${name} scrolls ${el.scrollWidth}>${el.clientWidth}`);
    }
    if (el.tagName === 'TABLE' && (el.scrollWidth > el.clientWidth + 1 ||
        el.getBoundingClientRect().right > window.innerWidth + 1)) {
      wide.push(`${name} ${el.scrollWidth}>${el.clientWidth}`);
    }
  }
  return wide;
}
"""

# axe-core rules that must pass whatever impact axe gives them: landmarks, headings and
# table headers are "moderate" to axe, and the issue asks for them all the same.
MUST_PASS = {
    "landmark-one-main", "region", "landmark-unique", "landmark-no-duplicate-banner",
    "page-has-heading-one", "empty-heading", "th-has-data-cells", "td-headers-attr",
    "label", "color-contrast", "tabindex", "scrollable-region-focusable", "html-has-lang",
    "html-lang-valid", "valid-lang", "document-title", "bypass",
}  # fmt: skip


async def check_glyphs(page: Page, where: str) -> None:
    seen = await page.evaluate(GLYPHS, None)
    assert seen["face"], f"{where}: no CJK font (document.fonts.check)"
    assert seen["runs"], f"{where}: no Chinese text was found to measure"
    narrow = [r for r in seen["runs"] if not 0.9 <= r["em"] <= 1.1]
    assert not narrow, f"{where}: Chinese drawn narrower or wider than 1 em: {narrow}"
    assert seen["distinct"], f"{where}: different Chinese characters draw alike (tofu)"


async def check_accessible(page: Page, where: str) -> None:
    await page.add_script_tag(path=AXE)
    result = await page.evaluate("async () => await axe.run(document)")
    failed = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical") or v["id"] in MUST_PASS
    ]
    assert not failed, f"{where}: axe-core: {failed}"
    assert len(result["passes"]) > 10  # axe ran its rules on the page


def png_width(path: Path) -> int:
    width: int = struct.unpack(">I", path.read_bytes()[16:20])[0]
    return width


@dataclass
class Tour:
    """The pages a director sees, the payer's pages, and what each one's heading says."""

    order_id: str
    receipt: pb.Receipt
    business_no: str
    pages: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)


async def tour_data(deployed: Deployed, office: Office) -> Tour:
    business_no = f"B-{uuid.uuid4().hex[:10]}"
    order = await deployed.create(office.windows[1], business_no=business_no)
    paid = await pay(deployed, order, Channel.WECHAT)
    refund = deployed.refund_request(paid, 1000, "重复收费")
    refunded = await deployed.terminal_of_order(paid).Refund(refund, timeout=30)
    assert refunded.state == pb.PARTIALLY_REFUNDED
    await wait_recorded(deployed, paid.order_id, "PARTIALLY_REFUNDED")
    receipt = await receipt_in_record(deployed, paid.order_id)
    tour = Tour(paid.order_id, receipt, business_no)
    ask = lookup(receipt)
    tour.pages = {
        "signin": ("/signin", {"zh_CN": "登录", "en": "Sign in"}),
        "payer-form": ("/payer/receipt", {"zh_CN": "我的缴费", "en": "My payment"}),
        "payer": (f"/payer/receipt?{ask}", {"zh_CN": "我的缴费", "en": "My payment"}),
        "receipt": (f"/payer/receipt/document?{ask}", {}),  # the receipt is Chinese only
        "today": ("/today", {"zh_CN": "今天", "en": "Today"}),
        "breakdown": ("/today/breakdown", {"zh_CN": "今日明细", "en": "Today in detail"}),
        "orders": (f"/orders?business_no={business_no}", {"zh_CN": "订单", "en": "Orders"}),
        "order": (f"/orders/{paid.order_id}", {"zh_CN": "订单", "en": "Order"}),
        "supervision": ("/supervision", {"zh_CN": "监管", "en": "Supervision"}),
        "reports": ("/reports", {"zh_CN": "报表", "en": "Reports"}),
        "settlement": ("/reports/settlement", {"zh_CN": "日结", "en": "Settlement"}),
    }
    return tour


@pytest.mark.timeout(600)
@pytest.mark.parametrize("language", ["zh_CN", "en"])
async def test_every_page_in_each_language_on_a_phone_and_a_desktop(
    deployed: Deployed, chromium: Browser, office: Office, language: str
) -> None:
    tour = await tour_data(deployed, office)
    SHOTS.mkdir(parents=True, exist_ok=True)
    tag = language.replace("_", "-")
    for device, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        context = await new_context(chromium, language, viewport, bypass_csp=True)
        page = await context.new_page()
        for name, (path, headings) in tour.pages.items():
            where = f"{name} ({language}, {device})"
            if name == "today":
                await sign_in(page, office, "director")
            response = await page.goto(f"{office.url}{path}")
            assert response is not None and response.status == 200, where
            if headings:
                assert await page.get_attribute("html", "lang") == tag, where
                await expect(page.locator("h1")).to_contain_text(headings[language])
            else:
                await expect(page.locator("body")).to_contain_text(tour.receipt.receipt_no)
            await check_glyphs(page, where)
            if device == "phone":
                assert await page.evaluate(OVERFLOW) == [], f"{where}: scrolls sideways"
            await check_accessible(page, where)
            shot = SHOTS / f"{name}-{language}-{device}.png"
            await page.screenshot(path=shot, full_page=True)
            assert png_width(shot) == viewport["width"], where  # nothing wider than the screen
        await context.close()


async def test_the_glyph_check_fails_on_tofu(chromium: Browser, office: Office) -> None:
    """The check above, on characters no font has (a private-use area): it must see tofu."""
    context = await new_context(chromium)
    page = await context.new_page()
    await page.goto(f"{office.url}/signin")
    seen = await page.evaluate(GLYPHS, "\ue000\ue001\ue002\ue003")
    assert not seen["distinct"]  # every missing glyph draws the same box
    real = await page.evaluate(GLYPHS, "缴费号证")
    assert real["distinct"] and all(0.9 <= r["em"] <= 1.1 for r in real["runs"])
    await context.close()


async def test_chinese_is_drawn_with_a_cjk_font(chromium: Browser, office: Office) -> None:
    """Which font the browser really used for the heading (Chromium's DevTools protocol)."""
    context = await new_context(chromium)
    page = await context.new_page()
    await page.goto(f"{office.url}/payer/receipt")
    cdp = await context.new_cdp_session(page)
    await cdp.send("DOM.enable")
    await cdp.send("CSS.enable")
    document = await cdp.send("DOM.getDocument")
    node = await cdp.send(
        "DOM.querySelector", {"nodeId": document["root"]["nodeId"], "selector": "h1"}
    )
    fonts = await cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})
    families = {f["familyName"] for f in fonts["fonts"] if f["glyphCount"] > 0}
    assert any("CJK" in family for family in families), families
    await context.close()


async def test_sign_in_and_search_with_the_keyboard_alone(
    deployed: Deployed, context: BrowserContext, office: Office
) -> None:
    business_no = f"B-{uuid.uuid4().hex[:10]}"
    order = await deployed.create(office.windows[0], business_no=business_no)
    await wait_recorded(deployed, order.order_id)
    page = await context.new_page()
    await page.goto(f"{office.url}/signin")

    # the director's menu, the search form (each date field is three stops) and its results
    async def tab_to(selector: str, most: int = 40) -> list[str]:
        """Tab until the element is focused; the focused elements on the way."""
        visited = []
        for _ in range(most):
            await page.keyboard.press("Tab")
            focused = await page.evaluate(
                """() => { const e = document.activeElement;
                           const s = getComputedStyle(e);
                           return [e.outerHTML.slice(0, 80), s.outlineStyle, s.outlineWidth]; }"""
            )
            assert focused[1] != "none" and focused[2] != "0px", f"no focus ring on {focused[0]}"
            visited.append(focused[0])
            if await page.evaluate("(s) => document.activeElement.matches(s)", selector):
                return visited
        raise AssertionError(f"{selector} not reached by Tab: {visited}")

    visited = await tab_to("input[name=username]")
    assert "跳到正文" in visited[0]  # the skip link comes first
    await page.keyboard.type("director")
    await page.keyboard.press("Tab")
    await page.keyboard.type(office.passwords["director"])
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("who")).to_contain_text("director")
    await tab_to("nav a[href='/orders']")
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_have_text("订单")
    await tab_to("input[name=business_no]")
    await page.keyboard.type(business_no)
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("found")).to_contain_text("共 1 笔订单")
    await tab_to(f"a[href='/orders/{order.order_id}']")
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("order-id")).to_have_text(order.order_id)
    await expect(page.get_by_test_id("order-state")).to_have_text("待缴费")


async def test_sign_in_and_sign_out(context: BrowserContext, office: Office) -> None:
    page = await context.new_page()
    await page.goto(f"{office.url}/today")
    await expect(page).to_have_url(re.compile(r"/signin$"))
    await page.fill("input[name=username]", "director")
    await page.fill("input[name=password]", "wrong-password")
    await page.get_by_test_id("signin").click()
    await expect(page.get_by_test_id("error")).to_have_text("用户名或密码错误。")
    await sign_in(page, office, "director")
    await expect(page.locator("h1")).to_contain_text("今天")
    cookie = next(c for c in await context.cookies() if c["name"] == "wp_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    await page.get_by_role("button", name="退出").click()
    await expect(page).to_have_url(re.compile(r"/signin$"))
    await page.goto(f"{office.url}/orders")
    await expect(page).to_have_url(re.compile(r"/signin$"))


async def test_the_language_switch_on_the_page_and_with_the_account(
    chromium: Browser, office: Office
) -> None:
    context = await new_context(chromium, "zh_CN")
    page = await context.new_page()
    await sign_in(page, office, "head")
    await page.goto(f"{office.url}/supervision")
    await page.get_by_test_id("language-switch").click()
    await expect(page).to_have_url(re.compile(r"/supervision$"))  # back where it was
    await expect(page.locator("h1")).to_have_text("Supervision")
    assert await page.get_attribute("html", "lang") == "en"
    await context.close()
    # The account keeps the choice: another browser, asking for Chinese, gets English.
    context = await new_context(chromium, "zh_CN")
    page = await context.new_page()
    await sign_in(page, office, "head")
    await expect(page.locator("h1")).to_contain_text("Today")
    await page.get_by_test_id("language-switch").click()
    await expect(page.locator("h1")).to_contain_text("今天")
    await context.close()


async def test_each_role_sees_only_its_scope(
    deployed: Deployed, chromium: Browser, office: Office
) -> None:
    mine = await deployed.create(office.windows[0], business_no=f"B-{uuid.uuid4().hex[:10]}")
    other = await deployed.create(office.windows[1])
    await wait_recorded(deployed, mine.order_id)
    await wait_recorded(deployed, other.order_id)

    clerk = await new_context(chromium)
    page = await clerk.new_page()
    await sign_in(page, office, "clerk")
    response = await page.goto(f"{office.url}/orders/{mine.order_id}")
    assert response is not None and response.status == 200
    # out of reach, an order answers as one that does not exist (docs/CONSOLE.md)
    response = await page.goto(f"{office.url}/orders/{other.order_id}")
    assert response is not None and response.status == 404
    await expect(page.get_by_test_id("error")).to_have_text("订单不存在。")
    await clerk.close()

    auditor = await new_context(chromium)
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
    await expect(page.locator("#live")).to_contain_text("实时")  # the event stream is open
    before = int((await figure.inner_text()).replace(",", ""))
    await pay(deployed, await deployed.create(deployed.window()))
    # No reload: the server pushes the new figures once the record has the payment.
    await expect(figure).not_to_have_text(f"{before:,}", timeout=60_000)
    assert int((await figure.inner_text()).replace(",", "")) > before
    await expect(page.locator('[data-figure="payments_fen"]')).to_contain_text("¥")


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
    await page.get_by_role("link", name="订单", exact=True).click()
    await page.fill("input[name=business_no]", business_no)
    await page.get_by_test_id("search").click()
    await page.click(f"text={paid.order_id}")
    await expect(page.get_by_test_id("order-state")).to_have_text("已缴费")
    journal = page.get_by_test_id("journal")
    await expect(journal).to_contain_text("订单创建")
    await expect(journal).to_contain_text(deployed.terminal_of(office.windows[1]))
    lines = page.get_by_test_id("lines")
    await expect(lines).to_contain_text("号牌工本费（汽车反光号牌）")  # not PLT-AUTO alone
    await expect(lines).to_contain_text("行驶证工本费")
    await expect(page.get_by_test_id("cancel-form")).to_have_count(0)  # paid: nothing to cancel

    await page.goto(f"{office.url}/orders/{unpaid.order_id}")
    await page.fill("input[name=reason]", "申请人撤回业务")
    await page.get_by_role("button", name="取消订单").click()
    assert (await deployed.get(unpaid.order_id)).state == pb.CANCELLED  # through the actor
    await wait_recorded(deployed, unpaid.order_id, "CANCELLED")
    await page.reload()
    await expect(page.get_by_test_id("order-state")).to_have_text("已取消")
    await expect(page.get_by_test_id("journal")).to_contain_text("[console: head]")


async def download(page: Page, form: str, **fields: str) -> bytes:
    locator = page.get_by_test_id(form)
    for name, value in fields.items():
        if name == "encoding":
            await locator.locator("select[name=encoding]").select_option(value)
        else:
            await locator.locator(f"input[name={name}]").fill(value)
    async with page.expect_download() as download_info:
        await locator.locator("button").first.click()
    return Path(await (await download_info.value).path()).read_bytes()


async def test_the_settlement_csv_matches_the_settlement_rpc_and_opens_in_excel(
    deployed: Deployed, context: BrowserContext, office: Office
) -> None:
    paid = await pay(deployed, await deployed.create(deployed.window()), Channel.WECHAT)
    await wait_recorded(deployed, paid.order_id, "PAID")
    page = await context.new_page()
    await sign_in(page, office, "director")
    await page.get_by_role("link", name="报表").click()
    day = await page.get_by_test_id("settlement-form").locator("input[name=day]").input_value()
    exported = await download(page, "settlement-form")
    assert exported.startswith(b"\xef\xbb\xbf")  # the BOM by which Excel reads UTF-8
    rows = list(csv.reader(io.StringIO(exported[3:].decode(), newline="")))
    names = {"WECHAT": "微信支付", "ALIPAY": "支付宝", "UNIONPAY": "银联", "CASH": "现金"}
    settlement = await deployed.backoffice.GetSettlement(pb.SettlementRequest(date=day))
    expected = [
        [r.service_point_id, r.window_id, names[pb.Channel.Name(r.channel)], str(r.payments),
         yuan(r.payments_fen, False), str(r.refunds), yuan(r.refunds_fen, False),
         yuan(r.payments_fen - r.refunds_fen, False)]
        for r in settlement.rows
    ]  # fmt: skip
    assert rows[0][:3] == ["网点", "窗口", "缴费方式"]
    assert rows[1:] == expected
    older = await download(page, "settlement-form", encoding="gbk")
    assert list(csv.reader(io.StringIO(older.decode("gbk"), newline=""))) == rows


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
    await page.get_by_role("link", name="监管").click()
    unhealed = page.get_by_test_id("unhealed")
    await expect(unhealed).to_contain_text(ghost)
    await expect(unhealed).to_contain_text("本系统无记录")
    await page.get_by_role("link", name="报表").click()
    exported = await download(page, "reconciliation-form", day=day.isoformat())
    rows = list(csv.DictReader(io.StringIO(exported[3:].decode(), newline="")))
    assert [
        (r["行类型"], r["差异类型"], r["商户订单号"], r["支付机构金额（元）"]) for r in rows
    ] == [
        ("已核对缴费", "一致", "", "0.00"),
        ("已核对退款", "一致", "", "0.00"),
        ("差异", "本系统无记录", ghost, "43.21"),
    ]


async def test_the_payer_page_from_the_slips_qr_code_without_javascript(
    deployed: Deployed, chromium: Browser, office: Office
) -> None:
    paid = await pay(deployed, await deployed.create(deployed.window()), Channel.ALIPAY)
    receipt = await receipt_in_record(deployed, paid.order_id)
    context = await new_context(chromium, java_script_enabled=False)
    page = await context.new_page()
    # The slip's QR code opens the page with its three codes filled in: all shows at once.
    await page.goto(f"{office.url}/payer/receipt?{lookup(receipt)}")
    await expect(page.get_by_test_id("total")).to_have_text(f"¥{yuan(paid.amount_fen)}")
    await expect(page.get_by_test_id("status")).to_have_text("已缴费")
    await expect(page.get_by_test_id("channel")).to_have_text("支付宝")
    await expect(page.get_by_test_id("business-no")).to_have_text(paid.business_no)
    await expect(page.get_by_test_id("paid-at")).to_have_text(re.compile(r"^\d{4}年\d+月\d+日 "))
    await expect(page.get_by_test_id("items")).to_contain_text("行驶证工本费")
    await expect(page.get_by_test_id("no-refunds")).to_have_text("没有退款。")
    await expect(page.get_by_test_id("office-phone")).to_have_text("0871-00000000")
    assert await page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    await page.get_by_test_id("receipt-view").click()
    await expect(page.locator("h1")).to_have_text("非税收入统一票据（电子）")
    await expect(page.locator("body")).to_contain_text(receipt.receipt_no)
    # Typing the three codes by hand stays possible.
    await page.goto(f"{office.url}/payer/receipt")
    await page.fill("input[name=code]", receipt.receipt_code)
    await page.fill("input[name=no]", receipt.receipt_no)
    await page.fill("input[name=check]", receipt.check_code)
    await page.get_by_test_id("look-up").click()
    await expect(page.get_by_test_id("total")).to_have_text(f"¥{yuan(paid.amount_fen)}")

    base = f"{office.url}/payer/receipt?code={receipt.receipt_code}&no={receipt.receipt_no}"
    response = await page.goto(f"{base}&check=ZZZZZZ")
    assert response is not None and response.status == 404
    await expect(page.get_by_test_id("not-found")).to_contain_text("未找到")
    statuses = []
    for _ in range(office.lookups_per_minute):
        response = await page.goto(f"{base}&check=ZZZZZZ")
        assert response is not None
        statuses.append(response.status)
    assert statuses[-1] == 429  # 40 a minute per address: 4 used above (the receipt's too)
    assert statuses.index(429) == office.lookups_per_minute - 4
    await context.close()

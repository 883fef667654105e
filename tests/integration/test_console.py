"""The console over real HTTP against a real PostgreSQL record (a throwaway cluster),
filled in the drainer's shape. Cancelling through the command path is covered by the
browser tests against the e2e deployment; here the command port is a fake."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import date, datetime
from ipaddress import ip_network
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from loadtest.console_data import snapshot
from orchestrator.console.accounts import Role, StaffBook, ensure_dev_accounts, new_account
from orchestrator.console.app import CONSOLE, COOKIE, Console, ConsoleSettings, build_app
from orchestrator.console.guard import LOCK_AFTER_FAILURES
from orchestrator.console.queries import ConsoleQueries
from orchestrator.console.scope import Scope
from orchestrator.console.server import STAFF_FILE
from orchestrator.domain.states import Channel
from orchestrator.reconcile import recorded
from orchestrator.reconcile.job import LISTED, Outcome, Report
from orchestrator.reconcile.matcher import Difference, Kind, Match
from orchestrator.record.writer import RecordWriter

ZONE = ZoneInfo("Asia/Shanghai")
CHECK = "K7Q2MX"


class RefusingCommands:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    async def cancel(self, order_id: str, reason: str, username: str) -> str:
        self.calls.append((order_id, reason, username))
        return "refused by the fake"


def receipt(order: dict[str, Any], number: str) -> dict[str, Any]:
    return {
        "receipt_code": "53012526", "receipt_no": number, "check_code": CHECK,
        "order_id": order["order_id"], "business_no": order["business_no"],
        "payer_name": order["payer_name"],
        "items": [{**{k: line[k] for k in ("fee_code", "name", "unit", "quantity",
                                            "amount_fen")}, "standard_fen": 1}
                  for line in order["lines"]],
        "total_fen": order["amount_fen"], "total_in_words": "壹佰壹拾元整",
        "issuing_unit": "某市公安局交通警察支队车辆管理所", "issuer": "SP01 SP01-W1窗口",
        "issued_at": order["paid_at"], "status": "ISSUED", "refunded_fen": 0,
        "channel": "WECHAT",
    }  # fmt: skip


def reconciliation(day: date) -> Report:
    """WeChat matched one payment; three differences: one of SP01-W1's orders, one the
    bill shows and windowpay does not know (no order), one of SP02 healed."""
    wechat = Match(Channel.WECHAT, day, bill_rows=4, matched_count=1, matched_amount_fen=11000)
    outcomes = [
        Outcome(Difference(Kind.AMOUNT_MISMATCH, Channel.WECHAT, "SP01-AAA1-A1", "", 11000, 1,
                           "payment amounts differ", order_id="SP01-AAA1"), LISTED, False),
        Outcome(Difference(Kind.MISSING_AT_WINDOWPAY, Channel.WECHAT, "GHOST-1", "", 0, 4321,
                           "a payment windowpay never made"), LISTED, False),
        Outcome(Difference(Kind.STATE_MISMATCH, Channel.WECHAT, "SP02-BBB1-A9", "", 0, 500,
                           "paid at the provider, FAILED at windowpay", order_id="SP02-BBB1",
                           heal=True), "late success refunded automatically", True),
    ]  # fmt: skip
    return Report(
        day,
        matches={Channel.WECHAT: wechat},
        outcomes=outcomes,
        failures={Channel.ALIPAY: "no usable bill: timed out"},
    )


@pytest.fixture
async def office(database_url: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    now_ms = int(time.time() * 1000)
    orders = [
        snapshot("SP01-AAA1", "SP01", "SP01-W1", now_ms - 60_000, paid_after_s=30,
                 payer_name="王小明"),
        snapshot("SP01-AAA2", "SP01", "SP01-W2", now_ms - 50_000, paid_after_s=None),
        snapshot("SP02-BBB1", "SP02", "SP02-W1", now_ms - 40_000, paid_after_s=20,
                 channel="CASH"),
    ]  # fmt: skip
    day = datetime.now(ZONE).date()
    async with await AsyncConnection.connect(database_url) as conn:
        await RecordWriter(ZONE).write(
            conn, orders, receipts=[receipt(orders[0].snapshot, "0000000001")]
        )
        await recorded.save(conn, reconciliation(day), now_ms)
    staff_file = tmp_path / STAFF_FILE  # where `windowpay staff --data-dir tmp_path` edits
    passwords = ensure_dev_accounts(staff_file, "SP01", "SP01-W1")
    assert passwords is not None
    commands = RefusingCommands()
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False) as pool:
        await pool.open()
        console = Console(
            ConsoleQueries(pool),
            StaffBook(staff_file),
            commands,
            # Behind a TLS proxy on this host: the test client stands in for it.
            ConsoleSettings(
                zone=ZONE,
                payer_lookups_per_minute=5,
                trusted_proxies=(ip_network("127.0.0.1/32"),),
                live_every_s=0.2,
            ),
        )
        server = TestServer(build_app(console))
        await server.start_server()
        try:
            yield {"server": server, "passwords": passwords, "commands": commands,
                   "book": console.book, "day": day, "pool": pool,
                   "data_dir": tmp_path}  # fmt: skip
        finally:
            await server.close()


class Browser:
    """An HTTP client that keeps the session cookie itself (it is Secure; the test
    server is plain HTTP on loopback, as browsers allow)."""

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.token = ""
        self.signin_cookie = ""
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        await self.http.close()

    async def request(
        self, method: str, path: str, forwarded_for: str = "", **kw: Any
    ) -> tuple[int, str, Any]:
        """`forwarded_for`: the client's address as the proxy in front tells it."""
        cookies = [f"{COOKIE}={self.token}"] if self.token else []
        if path == "/signin" and self.signin_cookie:
            cookies.append(f"wp_signin={self.signin_cookie}")
        headers = {"Cookie": "; ".join(cookies)} if cookies else {}
        if forwarded_for:
            headers["X-Forwarded-For"] = forwarded_for
        async with self.http.request(
            method, self.server.make_url(path), headers=headers, allow_redirects=False, **kw
        ) as response:
            for cookie in response.cookies.values():
                if cookie.key == COOKIE:
                    self.token = cookie.value
                elif cookie.key == "wp_signin":
                    self.signin_cookie = cookie.value  # as a browser keeps it
            return response.status, await response.text(), response

    async def sign_in(self, username: str, password: str, forwarded_for: str = "") -> int:
        form = await self.form(username, password)
        status, _, _ = await self.request("POST", "/signin", forwarded_for, data=form)
        return status

    async def form(self, username: str, password: str) -> dict[str, str]:
        """The sign-in form's fields, with the CSRF token of its page (and its cookie)."""
        _, body, response = await self.request("GET", "/signin")
        self.signin_cookie = response.cookies["wp_signin"].value
        found = re.search(r'name="csrf" value="([^"]+)"', body)
        assert found
        return {"username": username, "password": password, "csrf": found.group(1)}

    async def csrf(self, path: str) -> str:
        _, body, _ = await self.request("GET", path)
        found = re.search(r'name="csrf" value="([^"]+)"', body)
        assert found, body
        return found.group(1)


@pytest.fixture
async def browser(office: dict[str, Any]) -> AsyncIterator[Browser]:
    client = Browser(office["server"])
    yield client
    await client.close()


async def test_pages_need_a_session(browser: Browser) -> None:
    for path in ("/today", "/orders", "/orders/SP01-AAA1", "/supervision", "/reports"):
        status, _, response = await browser.request("GET", path)
        assert (status, response.headers["Location"]) == (303, "/signin")


async def test_sign_in_sets_a_secure_http_only_same_site_cookie(
    browser: Browser, office: dict[str, Any]
) -> None:
    assert await browser.sign_in("director", "wrong-password") == 401
    form = await browser.form("director", office["passwords"]["director"])
    status, _, response = await browser.request("POST", "/signin", data=form)
    assert status == 303
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict"
    status, body, _ = await browser.request("GET", "/today")
    assert status == 200
    figures = dict(re.findall(r'data-figure="(\w+)">([^<]*)<', body))
    assert figures["payments"] == "2"
    assert figures["payments_fen"] == "220.00"
    assert figures["open_orders"] == "1"


async def test_the_sign_in_form_needs_its_csrf_token(
    browser: Browser, office: dict[str, Any]
) -> None:
    form = await browser.form("director", office["passwords"]["director"])
    forged = {**form, "csrf": "from-another-site"}
    assert (await browser.request("POST", "/signin", data=forged))[0] == 403
    browser.signin_cookie = ""  # a cross-site post carries no SameSite=Strict cookie
    assert (await browser.request("POST", "/signin", data=form))[0] == 403
    assert browser.token == ""


async def test_sign_out_ends_the_session(browser: Browser, office: dict[str, Any]) -> None:
    await browser.sign_in("head", office["passwords"]["head"])
    token = browser.token
    csrf = await browser.csrf("/today")
    status, _, _ = await browser.request("POST", "/signout", data={"csrf": csrf})
    assert status == 303
    browser.token = token  # the old cookie no longer opens anything
    status, _, _ = await browser.request("GET", "/today")
    assert status == 303


async def test_an_account_locks_after_repeated_failures(
    browser: Browser, office: dict[str, Any]
) -> None:
    for _ in range(LOCK_AFTER_FAILURES):
        assert await browser.sign_in("clerk", "not-the-password") == 401
    assert await browser.sign_in("clerk", office["passwords"]["clerk"]) == 403


async def test_guessing_from_one_address_locks_out_only_that_address(
    browser: Browser, office: dict[str, Any]
) -> None:
    guesser, desk = "203.0.113.9", "198.51.100.7"
    for _ in range(LOCK_AFTER_FAILURES):
        assert await browser.sign_in("director", "not-the-password", guesser) == 401
    password = office["passwords"]["director"]
    assert await browser.sign_in("director", password, guesser) == 403  # locked there
    assert await browser.sign_in("director", password, desk) == 303  # not at the desk


async def test_limits_count_each_client_behind_the_proxy(browser: Browser) -> None:
    lookup = "/payer/receipt?code=1&no=2&check=3"
    first = [(await browser.request("GET", lookup, "203.0.113.9"))[0] for _ in range(6)]
    assert first == [404] * 5 + [429]
    assert (await browser.request("GET", lookup, "198.51.100.7"))[0] == 404  # someone else
    # A header the client wrote, left of what the proxy appended, changes nothing.
    forged = (await browser.request("GET", lookup, "198.51.100.8, 203.0.113.9"))[0]
    assert forged == 429
    signins = [await browser.sign_in(f"nobody{n}", "x", "203.0.113.10") for n in range(21)]
    assert signins == [401] * 20 + [429]
    assert await browser.sign_in("nobody", "x", "198.51.100.7") == 401


async def test_a_long_username_is_refused_before_anything_is_kept(
    browser: Browser, office: dict[str, Any]
) -> None:
    console = office["server"].app[CONSOLE]
    assert await browser.sign_in("x" * 5000, "not-the-password") == 401
    assert len(console.signin) == 0  # no counter was made for it


def staff_command(office: dict[str, Any], *args: str, stdin: str = "") -> None:
    """`windowpay staff ...` as an operator runs it: another process."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "staff", "--data-dir",
         str(office["data_dir"]), *args],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("change", ["set-password", "disable"])
async def test_every_session_ends_when_the_password_changes_or_the_account_is_disabled(
    office: dict[str, Any], change: str
) -> None:
    phone, desktop = Browser(office["server"]), Browser(office["server"])
    try:
        for browser in (phone, desktop):
            assert await browser.sign_in("head", office["passwords"]["head"]) == 303
            assert (await browser.request("GET", "/today"))[0] == 200
        headers = {"Cookie": f"{COOKIE}={desktop.token}"}
        url = office["server"].make_url("/today/events")
        async with desktop.http.get(url, headers=headers) as stream:
            assert (await stream.content.readline()).startswith(b"data: ")
            staff_command(office, change, "head", stdin="a-new-password-1\n")
            rest = await asyncio.wait_for(stream.content.read(), timeout=30)  # it ends
        assert b"data: " not in rest
        for browser in (phone, desktop):
            status, _, response = await browser.request("GET", "/today")
            assert (status, response.headers["Location"]) == (303, "/signin")
    finally:
        await phone.close()
        await desktop.close()


async def test_a_disabled_account_cannot_sign_in(browser: Browser, office: dict[str, Any]) -> None:
    office["book"].update("head", disabled=True)
    assert await browser.sign_in("head", office["passwords"]["head"]) == 401


async def test_a_clerk_sees_only_their_window(browser: Browser, office: dict[str, Any]) -> None:
    await browser.sign_in("clerk", office["passwords"]["clerk"])
    assert (await browser.request("GET", "/orders/SP01-AAA1"))[0] == 200
    status, body, _ = await browser.request("GET", "/orders/SP01-AAA2")
    assert status == 403 and "outside your scope" in body
    status, body, _ = await browser.request("GET", "/orders?first=2000-01-01")
    assert "SP01-AAA1" in body and "SP01-AAA2" not in body and "SP02-BBB1" not in body
    _, body, _ = await browser.request("GET", "/today")
    assert re.search(r'data-figure="payments">1<', body)


async def test_a_day_without_payments_shows_zeros(browser: Browser, office: dict[str, Any]) -> None:
    office["book"].add(new_account("quiet", Role.HEAD, "quiet-point-1", "SP09"))
    await browser.sign_in("quiet", "quiet-point-1")
    status, body, _ = await browser.request("GET", "/today")
    assert status == 200
    figures = dict(re.findall(r'data-figure="(\w+)">([^<]*)<', body))
    assert figures == {"payments": "0", "payments_fen": "0.00", "refunds": "0",
                       "refunds_fen": "0.00", "open_orders": "0", "stuck_orders": "0"}  # fmt: skip


async def test_a_head_sees_their_service_point(browser: Browser, office: dict[str, Any]) -> None:
    await browser.sign_in("head", office["passwords"]["head"])
    assert (await browser.request("GET", "/orders/SP01-AAA2"))[0] == 200
    assert (await browser.request("GET", "/orders/SP02-BBB1"))[0] == 403


async def test_an_auditor_sees_masked_names_and_cannot_cancel(
    browser: Browser, office: dict[str, Any]
) -> None:
    await browser.sign_in("auditor", office["passwords"]["auditor"])
    _, body, _ = await browser.request("GET", "/orders/SP01-AAA1")
    assert "王**" in body and "王小明" not in body
    _, body, _ = await browser.request("GET", "/orders/SP01-AAA2")
    assert "cancel-form" not in body
    csrf = await browser.csrf("/orders/SP01-AAA2")
    status, _, _ = await browser.request(
        "POST", "/orders/SP01-AAA2/cancel", data={"csrf": csrf, "reason": "test"}
    )
    assert status == 403
    assert office["commands"].calls == []


async def test_a_changing_form_without_its_csrf_token_is_refused(
    browser: Browser, office: dict[str, Any]
) -> None:
    await browser.sign_in("director", office["passwords"]["director"])
    for data in ({"reason": "x"}, {"reason": "x", "csrf": "forged"}):
        status, _, _ = await browser.request("POST", "/orders/SP01-AAA2/cancel", data=data)
        assert status == 403
    assert office["commands"].calls == []
    csrf = await browser.csrf("/orders/SP01-AAA2")
    status, body, _ = await browser.request(
        "POST", "/orders/SP01-AAA2/cancel", data={"csrf": csrf, "reason": "case withdrawn"}
    )
    assert status == 409 and "refused by the fake" in body  # the port's answer is shown
    assert office["commands"].calls == [("SP01-AAA2", "case withdrawn", "director")]


async def test_search_finds_an_order_with_its_journal(
    browser: Browser, office: dict[str, Any]
) -> None:
    await browser.sign_in("director", office["passwords"]["director"])
    _, body, _ = await browser.request("GET", "/orders?business_no=B-SP01-AAA1")
    assert "SP01-AAA1" in body and "SP01-AAA2" not in body
    _, body, _ = await browser.request("GET", "/orders?receipt_no=0000000001")
    assert "SP01-AAA1" in body and "SP02-BBB1" not in body
    _, body, _ = await browser.request("GET", "/orders?channel=CASH")
    assert "SP02-BBB1" in body and "SP01-AAA1" not in body
    _, body, _ = await browser.request("GET", "/orders/SP01-AAA1")
    journal = body[body.index('data-testid="journal"') :]
    assert journal.count("<tr>") == 4  # header and three entries
    assert "T-SP01-W1" in journal  # from which terminal


async def test_settlement_and_fee_item_csv(browser: Browser, office: dict[str, Any]) -> None:
    await browser.sign_in("director", office["passwords"]["director"])
    day = office["day"].isoformat()
    status, body, response = await browser.request("GET", f"/reports/settlement.csv?day={day}")
    assert status == 200 and response.headers["Content-Type"].startswith("text/csv")
    lines = body.strip().split("\n")
    assert lines[1:] == [
        "SP01,SP01-W1,WECHAT,1,110.00,0,0.00,110.00",
        "SP02,SP02-W1,CASH,1,110.00,0,0.00,110.00",
    ]
    _, body, _ = await browser.request("GET", f"/reports/settlement?day={day}")
    assert "220.00" in body
    _, body, _ = await browser.request("GET", f"/reports/fee-items.csv?month={day[:7]}")
    assert body.strip().split("\n")[1:] == [
        "DOC-VLIC,行驶证,2,2,20.00",
        "PLT-AUTO,机动车号牌,2,2,200.00",
    ]


async def test_payer_lookup_by_number_and_check_code(browser: Browser) -> None:
    status, body, _ = await browser.request(
        "GET", f"/payer/receipt?code=53012526&no=0000000001&check={CHECK.lower()}"
    )
    assert status == 200 and 'data-testid="total">110.00<' in body
    status, body, _ = await browser.request(
        "GET", f"/payer/receipt/document?code=53012526&no=0000000001&check={CHECK}"
    )
    assert status == 200 and "0000000001" in body


async def test_a_wrong_check_code_says_not_found_like_an_unknown_number(browser: Browser) -> None:
    wrong = await browser.request("GET", "/payer/receipt?code=53012526&no=0000000001&check=AAAAAA")
    unknown = await browser.request(
        "GET", "/payer/receipt?code=53012526&no=0000000999&check=AAAAAA"
    )
    assert wrong[0] == unknown[0] == 404
    assert wrong[1].replace("0000000001", "N") == unknown[1].replace("0000000999", "N")
    assert "Not found" in wrong[1]


async def test_payer_lookups_are_rate_limited_per_address(browser: Browser) -> None:
    statuses = [
        (await browser.request("GET", "/payer/receipt?code=1&no=2&check=3"))[0] for _ in range(6)
    ]
    assert statuses == [404] * 5 + [429]
    assert (await browser.request("GET", "/payer/receipt"))[0] == 200  # the empty form


async def test_live_figures_stream_and_end_when_the_record_goes_away(
    browser: Browser, office: dict[str, Any]
) -> None:
    await browser.sign_in("director", office["passwords"]["director"])
    headers = {"Cookie": f"{COOKIE}={browser.token}"}
    url = office["server"].make_url("/today/events")
    async with browser.http.get(url, headers=headers) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        first = await stream.content.readline()
        assert first.startswith(b"data: ")
        figures = json.loads(first[len(b"data: ") :])
        assert (figures["payments"], figures["payments_fen"]) == ("2", "220.00")
        await office["pool"].close()  # the record is away: the stream ends, nothing hangs
        rest = await asyncio.wait_for(stream.content.read(), timeout=30)
        assert b"data: " not in rest


async def test_opening_the_sign_in_page_again_keeps_an_open_form_valid(
    browser: Browser, office: dict[str, Any]
) -> None:
    form = await browser.form("head", office["passwords"]["head"])
    await browser.request("GET", "/signin")  # another tab, or the browser's favicon request
    await browser.request("GET", "/favicon.ico")
    assert (await browser.request("POST", "/signin", data=form))[0] == 303


async def test_the_reconciliation_csv_per_provider_for_the_office(
    browser: Browser, office: dict[str, Any]
) -> None:
    await browser.sign_in("auditor", office["passwords"]["auditor"])
    day = office["day"].isoformat()
    _, body, _ = await browser.request("GET", "/reports")
    assert "/reports/reconciliation.csv" in body
    status, body, response = await browser.request("GET", f"/reports/reconciliation.csv?day={day}")
    assert status == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert f"reconciliation-{day}.csv" in response.headers["Content-Disposition"]
    lines = body.strip().split("\n")
    assert lines[0].startswith("day,provider,row,count,windowpay_yuan,provider_yuan,kind")
    assert lines[1:] == [
        f"{day},ALIPAY,no_bill,0,,,,,,,no usable bill: timed out,,",
        f"{day},WECHAT,payments,1,110.00,110.00,matched,,,,,,",
        f"{day},WECHAT,refunds,0,0.00,0.00,matched,,,,,,",
        f"{day},WECHAT,difference,1,110.00,0.01,amount_mismatch,SP01-AAA1-A1,,SP01-AAA1,"
        f"payment amounts differ,{LISTED},no",
        f"{day},WECHAT,difference,1,0.00,43.21,missing_at_windowpay,GHOST-1,,,"
        f"a payment windowpay never made,{LISTED},no",
        f"{day},WECHAT,difference,1,0.00,5.00,state_mismatch,SP02-BBB1-A9,,SP02-BBB1,"
        '"paid at the provider, FAILED at windowpay",late success refunded automatically,yes',
    ]
    _, body, _ = await browser.request("GET", "/reports/reconciliation.csv?day=2000-01-01")
    assert body.strip().count("\n") == 0  # a day never reconciled: the header alone


async def test_a_head_gets_no_office_wide_reconciliation(
    browser: Browser, office: dict[str, Any]
) -> None:
    await browser.sign_in("head", office["passwords"]["head"])
    _, body, _ = await browser.request("GET", "/reports")
    assert "/reports/reconciliation.csv" not in body
    status, body, _ = await browser.request("GET", "/reports/reconciliation.csv")
    assert status == 403 and "office-wide" in body


def unhealed(body: str) -> str:
    start = body.index('data-testid="unhealed"')
    return body[start : body.index("</section>", start)]


async def test_supervision_lists_the_differences_not_healed_in_scope(
    office: dict[str, Any],
) -> None:
    office["book"].add(new_account("other", Role.HEAD, "other-point-1", "SP02"))
    seen = {}
    for username, password in (
        ("director", office["passwords"]["director"]),
        ("clerk", office["passwords"]["clerk"]),  # SP01-W1
        ("other", "other-point-1"),
    ):
        browser = Browser(office["server"])
        try:
            assert await browser.sign_in(username, password) == 303
            seen[username] = unhealed((await browser.request("GET", "/supervision"))[1])
        finally:
            await browser.close()
    assert "SP01-AAA1-A1" in seen["director"] and "GHOST-1" in seen["director"]
    assert "SP02-BBB1-A9" not in seen["director"]  # healed
    assert "SP01-AAA1-A1" in seen["clerk"] and "GHOST-1" not in seen["clerk"]
    assert "SP01-AAA1-A1" not in seen["other"] and "none" in seen["other"]


async def test_an_attempt_is_overdue_after_its_own_channels_playbook(
    office: dict[str, Any],
) -> None:
    """SP01-AAA2 is unpaid; three of its attempts have been unresolved for 100 s."""
    pool: AsyncConnectionPool[Any] = office["pool"]
    now_ms = int(time.time() * 1000)
    async with pool.connection() as conn:
        for channel in ("WECHAT", "UNIONPAY", "ALIPAY"):
            await conn.execute(
                "INSERT INTO attempts VALUES (%s, 'SP01-AAA2', %s, 'SUBMITTED', 11000, "
                "'T-SP01-W2', %s, %s, NULL, NULL, '', '', false)",
                (f"SP01-AAA2-{channel}", channel, f"r-{channel}", now_ms - 100_000),
            )
    lists = await ConsoleQueries(pool).supervision(
        Scope(Role.DIRECTOR), now_ms, overdue_s=120,
        playbook_s={"WECHAT": 60.0, "UNIONPAY": 300.0},
    )  # fmt: skip
    # WeChat's playbook (60 s) is past, UnionPay's (300 s) is not; Alipay has none
    # here, so the general 120 s applies and it is not overdue either.
    assert [a["attempt_id"] for a in lists["unresolved_attempts"]] == ["SP01-AAA2-WECHAT"]
    lists = await ConsoleQueries(pool).supervision(
        Scope(Role.DIRECTOR), now_ms, overdue_s=90, playbook_s={"WECHAT": 60.0}
    )
    assert {a["attempt_id"] for a in lists["unresolved_attempts"]} == {
        "SP01-AAA2-WECHAT", "SP01-AAA2-UNIONPAY", "SP01-AAA2-ALIPAY",
    }  # fmt: skip

"""The console's HTTP application: sign-in, the staff pages, and the payer lookup.
Every staff page goes through `_staff` (session) and every order through `StaffScope.check`.
Every page is rendered in the request's language (`language_of`)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import psycopg
from aiohttp import web
from psycopg_pool import PoolClosed, PoolTimeout

from orchestrator.console import charts, i18n, reports
from orchestrator.console.accounts import (
    StaffAccount,
    StaffBook,
    password_matches,
    valid_username,
)
from orchestrator.console.guard import (
    Network,
    RateLimit,
    Session,
    Sessions,
    SignInGuard,
    client_address,
    csrf_ok,
    throttle_key,
)
from orchestrator.console.i18n import Language
from orchestrator.console.labels import N_, NO_OFFICE, Refusal, Refused
from orchestrator.console.pages import Office, Pages
from orchestrator.console.queries import ConsoleQueries, SearchFilters, Today
from orchestrator.console.ranks import Level, Ranks, Unit, lagging
from orchestrator.console.scope import OutOfScope, StaffScope, Unplaced
from orchestrator.domain.places import Places
from orchestrator.domain.states import Channel
from orchestrator.receipts.render import render_html

COOKIE = "wp_session"
LIVE_STREAMS = 3  # live today pages open at once per account
SIGNIN_COOKIE = "wp_signin"  # the sign-in form's CSRF token, before there is a session
LANGUAGE_COOKIE = "wp_lang"  # the language switch's choice, before (or without) an account
HERE = Path(__file__).parent
STATES = ("AWAITING_PAYMENT", "PAYING", "PAID", "CANCELLED", "EXPIRED",
          "PARTIALLY_REFUNDED", "REFUNDED")  # fmt: skip
CHANNELS = tuple(channel.value for channel in Channel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Commands(Protocol):
    async def cancel(self, order_id: str, reason: str, username: str) -> Refusal | None: ...


@dataclass
class ConsoleSettings:
    zone: tzinfo
    stuck_after_s: int = 600  # an open order older than this counts as stuck
    overdue_s: int = 120  # a refund pending this long needs a person
    # An attempt unresolved past its channel's playbook (seconds, by channel) needs a
    # person; `overdue_s` stands in for a channel without one.
    playbook_s: Mapping[str, float] = field(default_factory=dict)
    live_every_s: float = 2.0  # how often the today page's figures are pushed
    payer_lookups_per_minute: int = 10
    office: Office = field(default_factory=Office)  # fee names, places, whom payers call
    # Proxies whose X-Forwarded-For is believed ([console] trusted_proxies).
    trusted_proxies: tuple[Network, ...] = ()
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic


@dataclass
class Console:
    queries: ConsoleQueries
    book: StaffBook
    commands: Commands
    settings: ConsoleSettings
    sessions: Sessions = field(init=False)
    signin: SignInGuard = field(init=False)
    payer_limit: RateLimit = field(init=False)
    pages: Pages = field(init=False)
    ranks: Ranks = field(init=False)
    password_checks: asyncio.Semaphore = field(init=False)
    live_streams: Counter[str] = field(default_factory=Counter)  # open /today/events

    def __post_init__(self) -> None:
        s = self.settings
        self.password_checks = asyncio.Semaphore(2)
        self.sessions = Sessions(s.monotonic)
        self.signin = SignInGuard(s.monotonic)
        self.payer_limit = RateLimit(s.payer_lookups_per_minute, 60.0, s.monotonic)
        self.pages = Pages(i18n.load(s.zone), s.office)
        hierarchy = s.office.hierarchy or Places.implicit("", tuple(s.office.places))
        self.ranks = Ranks(hierarchy, s.office.windows)

    def signed_in(self, token: str | None) -> tuple[Session, StaffAccount] | None:
        """The session of this cookie and its account, while both stand: an account
        disabled or given a new password since (by any process) ends it."""
        session = self.sessions.get(token)
        if session is None:
            return None
        account = self.book.get(session.username)
        if account is None or account.disabled or account.epoch != session.epoch:
            self.sessions.close(token)
            return None
        if self.scope_of(account) is None:  # its office left the config meanwhile
            self.sessions.close(token)
            return None
        return session, account

    def scope_of(self, account: StaffAccount) -> StaffScope | None:
        """The account's scope in this deployment's hierarchy; None for an account it
        has no place for (docs/CONSOLE.md, "Accounts made before offices")."""
        try:
            return StaffScope.of(account, self.settings.office.hierarchy)
        except Unplaced:
            return None

    def client(self, request: web.Request) -> str:
        """The client's address: behind a trusted proxy, what the proxy says it is."""
        forwarded = request.headers.getall("X-Forwarded-For", [])
        address = client_address(request.remote, forwarded, self.settings.trusted_proxies)
        return throttle_key(address)

    def today(self) -> date:
        return datetime.fromtimestamp(self.settings.clock(), self.settings.zone).date()

    def now_ms(self) -> int:
        return int(self.settings.clock() * 1000)


CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)
CLOSING: web.AppKey[asyncio.Event] = web.AppKey("closing", asyncio.Event)
SESSION = web.RequestKey("session", Session)
STAFF = web.RequestKey("staff", StaffAccount)


def language_of(request: web.Request) -> Language:
    """The account's language, else the switch's cookie, else the browser's."""
    staff = request.get(STAFF)
    code = i18n.chosen(
        staff.language if staff else None,
        request.cookies.get(LANGUAGE_COOKIE),
        i18n.from_accept_language(request.headers.get("Accept-Language", "")),
    )
    return request.app[CONSOLE].pages.languages[code]


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    console = request.app[CONSOLE]
    staff = request.get(STAFF)
    session = request.get(SESSION)
    language = language_of(request)
    body = console.pages.render(
        language,
        template,
        staff=staff,
        scope=console.scope_of(staff) if staff else None,  # never raises: error pages too
        csrf=session.csrf if session else "",
        here=request.path_qs,
        path=request.path,
        **context,
    )
    response = web.Response(text=body, status=status, content_type="text/html")
    response.headers["Content-Language"] = language.tag
    response.headers["Vary"] = "Accept-Language, Cookie"
    return response


def error_page(request: web.Request, refused: Refused) -> web.Response:
    message = refused.text(language_of(request))
    return render(request, "error.html", status=refused.status, message=message)


@web.middleware
async def refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A refusal (`Refused`, the scope rule's included) as a page in the reader's language."""
    try:
        return await handler(request)
    except Refused as refused:
        return error_page(request, refused)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'; form-action 'self'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if not request.path.startswith("/static"):  # payers' names and payments: kept nowhere
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@web.middleware
async def staff_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Loads the signed-in account; staff pages without one go to the sign-in page."""
    console = request.app[CONSOLE]
    signed_in = console.signed_in(request.cookies.get(COOKIE))
    if signed_in is not None:
        request[SESSION], request[STAFF] = signed_in
    public = request.path.startswith(("/payer", "/static", "/signin", "/favicon", "/language"))
    if not public and STAFF not in request:
        raise web.HTTPSeeOther("/signin")
    if request.method == "POST" and SESSION in request and request.path != "/signin":
        form = await request.post()
        if not csrf_ok(request[SESSION], _text(form, "csrf")):
            raise Refused(403, N_("The form has expired; reload the page and try again."))
    return await handler(request)


def _text(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _scope(request: web.Request) -> StaffScope:
    staff: StaffAccount = request[STAFF]
    scope = request.app[CONSOLE].scope_of(staff)
    if scope is None:  # signed_in ends such a session; a page never gets here with one
        raise OutOfScope(N_("This account belongs to no office of this deployment."))
    return scope


# ---- sign-in ---------------------------------------------------------------------------


def _signin_form(request: web.Request, status: int = 200, error: str = "") -> web.Response:
    """The sign-in form with a fresh CSRF token, also set in a SameSite cookie: a form
    posted from another site carries neither."""
    # Kept while the cookie lives: another tab (or the browser's own requests) reaching
    # the sign-in page must not invalidate a form already shown.
    token = request.cookies.get(SIGNIN_COOKIE, "")
    if len(token) != 43:
        token = secrets.token_urlsafe(32)
    shown = language_of(request).gettext(error) if error else ""  # labels.MESSAGES
    response = render(request, "signin.html", status=status, error=shown, signin_csrf=token)
    response.set_cookie(
        SIGNIN_COOKIE, token, httponly=True, secure=True, samesite="Strict", path="/signin"
    )
    return response


async def signin_page(request: web.Request) -> web.Response:
    return _signin_form(request)


async def signin(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    form = await request.post()
    username, password = _text(form, "username"), str(form.get("password", ""))
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, _text(form, "csrf")):
        return _signin_form(request, 403, "The form has expired; please sign in again.")
    client = console.client(request)
    if not console.signin.per_address.allow(client):
        return _signin_form(request, 429, "Too many attempts; wait a minute.")
    if not valid_username(username):  # no account has it: nothing is kept of it
        return _signin_form(request, 401, "Wrong username or password.")
    if console.signin.locked(username, client):
        return _signin_form(
            request, 403, "This account is locked after repeated failures; try again later."
        )
    account = console.book.get(username)
    # argon2 takes a quarter of a second and 64 MiB: in a thread (the front door shares
    # this loop), two at a time.
    async with console.password_checks:
        matches = await asyncio.to_thread(password_matches, account, password)
    if account is None or not matches:
        console.signin.failed(username, client)
        return _signin_form(request, 401, "Wrong username or password.")
    console.signin.succeeded(username, client)
    if console.scope_of(account) is None:
        return _signin_form(request, 403, NO_OFFICE)
    old = request.cookies.get(COOKIE)
    console.sessions.close(old)
    token, _ = console.sessions.open(username, account.epoch)
    response = web.HTTPSeeOther("/today")
    response.del_cookie(SIGNIN_COOKIE, path="/signin")
    response.set_cookie(COOKIE, token, httponly=True, secure=True, samesite="Strict", path="/")
    raise response


async def signout(request: web.Request) -> web.Response:
    request.app[CONSOLE].sessions.close(request.cookies.get(COOKIE))
    response = web.HTTPSeeOther("/signin")
    response.del_cookie(COOKIE, path="/")
    raise response


# ---- today -----------------------------------------------------------------------------


async def _today(request: web.Request) -> Today:
    console = request.app[CONSOLE]
    return await console.queries.today(
        _scope(request),
        console.today(),
        console.now_ms(),
        console.settings.stuck_after_s,
        str(console.settings.zone),
    )


def shown_figures(today: Today, language: Language) -> dict[str, str]:
    """The today page's figures as the page writes them (and the live stream sends them)."""
    shown = {
        name: language.money(value) if name.endswith("_fen") else language.number(value)
        for name, value in today.figures().items()
    }
    before = today.paid_last_week_fen
    change = (today.payments_fen - before) / before if before else None
    shown["change"] = "—" if change is None else language.percent(change, signed=True)
    return shown


async def today_page(request: web.Request) -> web.Response:
    today = await _today(request)
    language = language_of(request)
    chart = charts.hourly(
        today.hourly,
        today.hourly_last_week,
        language.gettext("Today"),
        language.gettext("Same weekday last week"),
    )
    figures = shown_figures(today, language)
    return render(request, "today.html", today=today, chart=chart, figures=figures)


async def breakdown_page(request: web.Request) -> web.Response:
    """The long tables of the today page (by window, service point, channel, fee item):
    one tap away on a phone, beside the figures on a desktop."""
    return render(request, "breakdown.html", today=await _today(request))


async def today_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the figures of the today page, whenever they change."""
    console = request.app[CONSOLE]
    username = request[STAFF].username
    if console.live_streams[username] >= LIVE_STREAMS:  # each runs six queries every 2 s
        raise web.HTTPTooManyRequests(text=f"at most {LIVE_STREAMS} live pages per account")
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    console.live_streams[username] += 1
    last = None
    closing = request.app[CLOSING]
    try:
        await response.prepare(request)
        while not closing.is_set():
            signed_in = console.signed_in(request.cookies.get(COOKIE))
            if signed_in is None:
                break  # signed out, disabled or given a new password meanwhile
            request[STAFF] = signed_in[1]  # its scope as it is now
            try:
                today = await _today(request)
            except (psycopg.Error, PoolClosed, PoolTimeout):
                break  # the record is away: the browser reconnects by itself later
            figures_text = shown_figures(today, language_of(request))
            if figures_text != last:
                await response.write(f"data: {json.dumps(figures_text)}\n\n".encode())
                last = figures_text
            else:  # a comment: a tab closed is noticed, and its place freed, at once
                await response.write(b":\n\n")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), console.settings.live_every_s)
    except ConnectionResetError:
        pass  # the browser went away
    finally:
        console.live_streams[username] -= 1
        if console.live_streams[username] <= 0:
            del console.live_streams[username]
    return response


# ---- orders ----------------------------------------------------------------------------


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise Refused(400, N_("Not a date (YYYY-MM-DD): %(value)s"), value=value[:40]) from None


async def search_page(request: web.Request) -> web.Response:
    q = request.query
    filters = SearchFilters(
        order_id=q.get("order_id", "").strip(),
        business_no=q.get("business_no", "").strip(),
        receipt_no=q.get("receipt_no", "").strip(),
        first=_day(q.get("first", "")),
        last=_day(q.get("last", "")),
        window_id=q.get("window_id", "").strip(),
        channel=q.get("channel", "") if q.get("channel", "") in CHANNELS else "",
        state=q.get("state", "") if q.get("state", "") in STATES else "",
    )
    searched = any(q.get(k) for k in q)
    rows = await request.app[CONSOLE].queries.search(_scope(request), filters) if searched else []
    return render(
        request, "search.html", rows=rows, q=q, searched=searched, states=STATES,
        channels=CHANNELS,
    )  # fmt: skip


async def _order(request: web.Request) -> Any:
    page = await request.app[CONSOLE].queries.order(request.match_info["order_id"])
    # One outside the account's scope is answered as one that does not exist: a guessed
    # order id tells neither that the order exists nor where.
    if page is None or not _scope(request).allows_order(page.order):
        raise Refused(404, N_("No such order."))
    return page


async def order_page(request: web.Request) -> web.Response:
    page = await _order(request)
    terminals = {a["attempt_id"]: a["terminal_id"] for a in page.attempts}
    return render(request, "order.html", page=page, terminals=terminals, message="")


async def cancel_order(request: web.Request) -> web.Response:
    page = await _order(request)
    scope = _scope(request)
    if not scope.may_cancel:
        raise Refused(403, N_("Your role cannot cancel orders."))
    reason = _text(await request.post(), "reason")
    message = ""
    if not 1 <= len(reason) <= 200:
        message = language_of(request).gettext("A reason (up to 200 characters) is required.")
    else:
        staff: StaffAccount = request[STAFF]
        refusal = await request.app[CONSOLE].commands.cancel(
            page.order["order_id"], reason, staff.username
        )
        if refusal is not None:
            message = f"{refusal.text(language_of(request))} ({refusal.detail})"
    if message:
        terminals = {a["attempt_id"]: a["terminal_id"] for a in page.attempts}
        return render(
            request, "order.html", status=409, page=page, terminals=terminals, message=message
        )
    raise web.HTTPSeeOther(f"/orders/{page.order['order_id']}?cancelled=1")


# ---- statistics by rank ----------------------------------------------------------------

RANK_DAYS = 31  # the longest span the statistics page reads at once


def _unit(request: web.Request, scope: StaffScope) -> tuple[Unit, list[Unit]]:
    """The unit asked for (`unit=office:KM`), else the viewer's own; one outside the
    viewer's reach is answered as one that does not exist."""
    units = request.app[CONSOLE].ranks.units(scope)
    asked = request.query.get("unit", "")
    if not asked:
        return units[0], units
    unit = next((u for u in units if u.key == asked), None)
    if unit is None:
        raise Refused(404, N_("No such place."))
    return unit, units


async def statistics_page(request: web.Request) -> web.Response:
    """The unit's parts side by side (the province's offices, an office's sites, a
    site's service points, a point's windows) over a span of days."""
    console = request.app[CONSOLE]
    scope = _scope(request)
    unit, units = _unit(request, scope)
    first = _day(request.query.get("first", "")) or console.today()
    last = _day(request.query.get("last", "")) or first
    if not 0 <= (last - first).days < RANK_DAYS:
        raise Refused(400, N_("Choose at most 31 days, the first before the last."))
    parts = console.ranks.part_ids(unit, scope)
    rows = await console.queries.ranks(scope, console.ranks, unit, parts, first, last)
    return render(
        request, "statistics.html", unit=unit, units=units, rows=rows, first=first,
        last=last, lagging=lagging(rows), Level=Level,
        total_fen=sum(r.payments_fen for r in rows),
        total_payments=sum(r.payments for r in rows),
        total_failures=sum(r.failures for r in rows),
    )  # fmt: skip


# ---- supervision and reports ---------------------------------------------------------


async def supervision_page(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    lists = await console.queries.supervision(
        _scope(request), console.now_ms(), console.settings.overdue_s, console.settings.playbook_s
    )
    return render(request, "supervision.html", lists=lists)


async def reports_page(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    return render(request, "reports.html", today=console.today().isoformat())


async def _settlement(request: web.Request) -> tuple[date, list[Any]]:
    console = request.app[CONSOLE]
    day = _day(request.query.get("day", "")) or console.today()
    snapshots = await console.queries.orders_of_day(_scope(request), day)
    return day, reports.settlement(snapshots, day, console.settings.zone, _scope(request))


async def settlement_csv(request: web.Request) -> web.Response:
    day, rows = await _settlement(request)
    text = reports.settlement_csv(rows, language_of(request))
    return _csv(request, text, f"settlement-{day.isoformat()}.csv")


async def settlement_print(request: web.Request) -> web.Response:
    day, rows = await _settlement(request)
    return render(
        request, "settlement.html", day=day, rows=rows,
        payments_fen=sum(r.payments_fen for r in rows),
        refunds_fen=sum(r.refunds_fen for r in rows),
    )  # fmt: skip


AUDIT_DAYS = 31


async def audit_page(request: web.Request) -> web.Response:
    """Each day's signed chain roots and its last `windowpay audit verify`: for the roles
    that see the whole office (the auditor's page)."""
    if not _scope(request).office_wide:
        raise OutOfScope(N_("The audit of the record is office-wide."))
    days = await request.app[CONSOLE].queries.audit_days(AUDIT_DAYS, _scope(request))
    return render(request, "audit.html", days=days)


async def fee_items_csv(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    raw = request.query.get("month", "") or console.today().strftime("%Y-%m")
    month = _day(raw + "-01")
    assert month is not None
    rows = await console.queries.fee_items_of_month(_scope(request), month)
    text = reports.fee_items_csv(rows, language_of(request), console.settings.office.fees)
    return _csv(request, text, f"fee-items-{raw}.csv")


async def reconciliation_csv(request: web.Request) -> web.Response:
    """Each provider's result for the day and its differences: office-wide, so only for
    the roles that see the whole office (a head or clerk finds the differences of their
    own orders under Supervision)."""
    console = request.app[CONSOLE]
    scope = _scope(request)
    if not scope.office_wide:
        raise OutOfScope(N_("The reconciliation with the providers is office-wide."))
    day = _day(request.query.get("day", "")) or console.today()
    # The providers' totals are of the merchant accounts the offices share: one office's
    # director gets its own differences only (docs/CONSOLE.md, "Reconciliation and scope").
    runs = await console.queries.reconciliation_runs(day)
    differences = await console.queries.differences(scope, day=day)
    text = reports.reconciliation_csv(
        runs, differences, language_of(request), totals=scope.deployment_wide
    )
    return _csv(request, text, f"reconciliation-{day}.csv")


def _csv(request: web.Request, text: str, name: str) -> web.Response:
    """UTF-8 with a byte-order mark, by which Excel knows it is UTF-8; or, with
    `encoding=gbk`, the Chinese Windows code page that older Excel assumes (written as
    GB18030, which is GBK for every character GBK has and never fails on one it lacks)."""
    if request.query.get("encoding", "").lower() == "gbk":
        body, charset = text.encode("gb18030"), "GB18030"
    else:
        body, charset = ("\ufeff" + text).encode(), "utf-8"
    return web.Response(
        body=body,
        headers={
            "Content-Type": f"text/csv; charset={charset}",
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


# ---- the payer's lookup (no sign-in) -----------------------------------------------------


async def _payer_receipt(request: web.Request) -> tuple[dict[str, Any] | None, bool]:
    """(receipt, asked): the receipt when the number and check code match."""
    q = request.query
    code, number, check = (q.get(k, "").strip() for k in ("code", "no", "check"))
    if not (code or number or check):
        return None, False
    console = request.app[CONSOLE]
    if not console.payer_limit.allow(console.client(request)):
        raise Refused(429, N_("Too many lookups from this address; wait a minute."))
    found = None
    if code.isdigit() and number.isdigit() and check and len(check) <= 12:
        found = await console.queries.receipt(code, number)
    if found is not None and not hmac.compare_digest(
        str(found["check_code"]).encode(), check.upper().encode()
    ):
        found = None  # the same answer as an unknown number
    return found, True


async def payer_page(request: web.Request) -> web.Response:
    """The payer's payment, from the slip's QR code (its three codes in the link) or
    typed by hand: what was paid, when and how, the receipt, refunds, whom to call."""
    receipt, asked = await _payer_receipt(request)
    if receipt is None:
        return render(
            request, "payer.html", status=404 if asked else 200, receipt=None, asked=asked,
            q=request.query, refunds=[], payment=None,
        )  # fmt: skip
    queries = request.app[CONSOLE].queries
    payment = await queries.payment_of(receipt["order_id"])
    refunds = await queries.refunds_of_order(receipt["order_id"])
    codes = {k: request.query.get(k, "").strip() for k in ("code", "no", "check")}
    return render(
        request, "payer.html", receipt=receipt, asked=True, q=request.query, refunds=refunds,
        payment=payment, codes=codes,
    )  # fmt: skip


async def payer_document(request: web.Request) -> web.Response:
    """The receipt (财政电子票据) as its own page, to print or, with `save=1`, to keep."""
    receipt, _ = await _payer_receipt(request)
    if receipt is None:
        raise Refused(
            404, N_("Not found. Check the receipt number and the check code on your slip.")
        )
    headers = {}
    if request.query.get("save"):
        name = f"{receipt['receipt_code']}-{receipt['receipt_no']}"
        headers["Content-Disposition"] = (
            f'attachment; filename="receipt-{name}.html"; '
            f"filename*=UTF-8''{quote('财政电子票据-' + name + '.html')}"
        )
    return web.Response(text=render_html(receipt), content_type="text/html", headers=headers)


# ---- the language switch -------------------------------------------------------------------


def _same_site(path: str) -> str:
    """`path` if it is a page of this site, else "/". The page's own `next` is a path as
    the request had it, percent-encoded: printable ASCII only. Anything else is refused
    before the check, because the Location header drops tabs and line breaks as browsers
    do ("/<TAB>/elsewhere" would go out as "//elsewhere", another site)."""
    printable = all("!" <= c <= "~" for c in path)
    if not printable or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


async def choose_language(request: web.Request) -> web.Response:
    """The switch on every page: remembered in a cookie, and with the account when one is
    signed in (the account's choice then follows it to any browser)."""
    form = await request.post()
    code = _text(form, "language")
    if code not in i18n.LANGUAGES:
        raise Refused(400, N_("No such language."))
    back = _same_site(_text(form, "next"))
    staff = request.get(STAFF)
    if staff is not None:
        request.app[CONSOLE].book.set_language(staff.username, code)
    response = web.HTTPSeeOther(back)
    response.set_cookie(
        LANGUAGE_COOKIE, code, max_age=365 * 86400, httponly=True, secure=True,
        samesite="Lax", path="/",
    )  # fmt: skip
    raise response


def build_app(console: Console) -> web.Application:
    app = web.Application(middlewares=[security_headers, refusals, staff_session])
    app[CONSOLE] = console
    app[CLOSING] = asyncio.Event()
    app.on_shutdown.append(_closing)
    app.add_routes(
        [
            web.get("/", home),
            web.get("/signin", signin_page),
            web.post("/signin", signin),
            web.post("/signout", signout),
            web.get("/today", today_page),
            web.get("/today/events", today_events),
            web.get("/today/breakdown", breakdown_page),
            web.get("/orders", search_page),
            web.get("/orders/{order_id}", order_page),
            web.post("/orders/{order_id}/cancel", cancel_order),
            web.get("/statistics", statistics_page),
            web.get("/supervision", supervision_page),
            web.get("/reports", reports_page),
            web.get("/audit", audit_page),
            web.get("/reports/settlement.csv", settlement_csv),
            web.get("/reports/settlement", settlement_print),
            web.get("/reports/fee-items.csv", fee_items_csv),
            web.get("/reports/reconciliation.csv", reconciliation_csv),
            web.get("/payer/receipt", payer_page),
            web.get("/payer/receipt/document", payer_document),
            web.post("/language", choose_language),
            web.static("/static", HERE / "static"),
        ]
    )
    return app


async def _closing(app: web.Application) -> None:
    app[CLOSING].set()  # ends the event streams, so that shutdown does not wait on them


async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/today")

"""The console's HTTP application: sign-in, the staff pages, and the payer lookup.
Every staff page goes through `_staff` (session) and every order through `Scope.check`."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any, Protocol

import jinja2
import psycopg
from aiohttp import web
from psycopg_pool import PoolClosed, PoolTimeout

from orchestrator.console import charts, reports
from orchestrator.console.accounts import StaffAccount, StaffBook, valid_username
from orchestrator.console.guard import (
    Network,
    RateLimit,
    Session,
    Sessions,
    SignInGuard,
    client_address,
    csrf_ok,
)
from orchestrator.console.queries import ConsoleQueries, SearchFilters
from orchestrator.console.scope import OutOfScope, Scope
from orchestrator.domain.states import Channel
from orchestrator.receipts.render import render_html

COOKIE = "wp_session"
SIGNIN_COOKIE = "wp_signin"  # the sign-in form's CSRF token, before there is a session
HERE = Path(__file__).parent
STATES = ("AWAITING_PAYMENT", "PAYING", "PAID", "CANCELLED", "EXPIRED",
          "PARTIALLY_REFUNDED", "REFUNDED")  # fmt: skip
CHANNELS = tuple(channel.value for channel in Channel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Commands(Protocol):
    async def cancel(self, order_id: str, reason: str, username: str) -> str: ...


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
    templates: jinja2.Environment = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.sessions = Sessions(s.monotonic)
        self.signin = SignInGuard(s.monotonic)
        self.payer_limit = RateLimit(s.payer_lookups_per_minute, 60.0, s.monotonic)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["yuan"] = yuan
        self.templates.filters["when"] = self.when

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
        return session, account

    def client(self, request: web.Request) -> str:
        """The client's address: behind a trusted proxy, what the proxy says it is."""
        forwarded = request.headers.getall("X-Forwarded-For", [])
        return client_address(request.remote, forwarded, self.settings.trusted_proxies)

    def when(self, ms: int | None) -> str:
        if not ms:
            return ""
        return datetime.fromtimestamp(ms / 1000, self.settings.zone).strftime("%Y-%m-%d %H:%M:%S")

    def today(self) -> date:
        return datetime.fromtimestamp(self.settings.clock(), self.settings.zone).date()

    def now_ms(self) -> int:
        return int(self.settings.clock() * 1000)


def yuan(fen: int | None) -> str:
    fen = int(fen or 0)
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)
CLOSING: web.AppKey[asyncio.Event] = web.AppKey("closing", asyncio.Event)
SESSION = web.RequestKey("session", Session)
STAFF = web.RequestKey("staff", StaffAccount)


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    console = request.app[CONSOLE]
    staff = request.get(STAFF)
    session = request.get(SESSION)
    body = console.templates.get_template(template).render(
        staff=staff,
        scope=Scope.of(staff) if staff else None,
        csrf=session.csrf if session else "",
        **context,
    )
    return web.Response(text=body, status=status, content_type="text/html")


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
    return response


@web.middleware
async def staff_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Loads the signed-in account; staff pages without one go to the sign-in page."""
    console = request.app[CONSOLE]
    signed_in = console.signed_in(request.cookies.get(COOKIE))
    if signed_in is not None:
        request[SESSION], request[STAFF] = signed_in
    public = request.path.startswith(("/payer", "/static", "/signin", "/favicon"))
    if not public and STAFF not in request:
        raise web.HTTPSeeOther("/signin")
    if request.method == "POST" and SESSION in request and request.path != "/signin":
        form = await request.post()
        if not csrf_ok(request[SESSION], _text(form, "csrf")):
            raise web.HTTPForbidden(text="the form has expired; reload the page and try again")
    try:
        return await handler(request)
    except OutOfScope as refused:
        return render(request, "error.html", status=403, message=str(refused))


def _text(form: Any, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _scope(request: web.Request) -> Scope:
    staff: StaffAccount = request[STAFF]
    return Scope.of(staff)


# ---- sign-in ---------------------------------------------------------------------------


def _signin_form(request: web.Request, status: int = 200, error: str = "") -> web.Response:
    """The sign-in form with a fresh CSRF token, also set in a SameSite cookie: a form
    posted from another site carries neither."""
    # Kept while the cookie lives: another tab (or the browser's own requests) reaching
    # the sign-in page must not invalidate a form already shown.
    token = request.cookies.get(SIGNIN_COOKIE, "")
    if len(token) != 43:
        token = secrets.token_urlsafe(32)
    response = render(request, "signin.html", status=status, error=error, signin_csrf=token)
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
    if account is None or account.disabled or not account.check_password(password):
        console.signin.failed(username, client)
        return _signin_form(request, 401, "Wrong username or password.")
    console.signin.succeeded(username, client)
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


async def _today(request: web.Request) -> Any:
    console = request.app[CONSOLE]
    return await console.queries.today(
        _scope(request),
        console.today(),
        console.now_ms(),
        console.settings.stuck_after_s,
        str(console.settings.zone),
    )


async def today_page(request: web.Request) -> web.Response:
    today = await _today(request)
    chart = charts.hourly(today.hourly, today.hourly_last_week, "same weekday last week")
    return render(request, "today.html", today=today, chart=chart)


async def today_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the figures of the today page, whenever they change."""
    console = request.app[CONSOLE]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    last = None
    closing = request.app[CLOSING]
    try:
        while not closing.is_set():
            if console.signed_in(request.cookies.get(COOKIE)) is None:
                break  # signed out, disabled or given a new password meanwhile
            try:
                today = await _today(request)
            except (psycopg.Error, PoolClosed, PoolTimeout):
                break  # the record is away: the browser reconnects by itself later
            figures_text = {
                k: yuan(v) if k.endswith("_fen") else str(v) for k, v in today.figures().items()
            }
            if figures_text != last:
                await response.write(f"data: {json.dumps(figures_text)}\n\n".encode())
                last = figures_text
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), console.settings.live_every_s)
    except ConnectionResetError:
        pass  # the browser went away
    return response


# ---- orders ----------------------------------------------------------------------------


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise web.HTTPBadRequest(text=f"not a date (YYYY-MM-DD): {value!r}") from None


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
    if page is None:
        raise web.HTTPNotFound(text="order not found")
    _scope(request).check(page.order["service_point_id"], page.order["window_id"])
    return page


async def order_page(request: web.Request) -> web.Response:
    page = await _order(request)
    terminals = {a["attempt_id"]: a["terminal_id"] for a in page.attempts}
    return render(request, "order.html", page=page, terminals=terminals, message="")


async def cancel_order(request: web.Request) -> web.Response:
    page = await _order(request)
    scope = _scope(request)
    if not scope.may_cancel:
        return render(request, "error.html", status=403, message="Your role cannot cancel orders.")
    reason = _text(await request.post(), "reason")
    message = ""
    if not 1 <= len(reason) <= 200:
        message = "A reason (up to 200 characters) is required."
    else:
        staff: StaffAccount = request[STAFF]
        message = await request.app[CONSOLE].commands.cancel(
            page.order["order_id"], reason, staff.username
        )
    if message:
        terminals = {a["attempt_id"]: a["terminal_id"] for a in page.attempts}
        return render(
            request, "order.html", status=409, page=page, terminals=terminals, message=message
        )
    raise web.HTTPSeeOther(f"/orders/{page.order['order_id']}?cancelled=1")


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
    return _csv(reports.settlement_csv(rows), f"settlement-{day.isoformat()}.csv")


async def settlement_print(request: web.Request) -> web.Response:
    day, rows = await _settlement(request)
    return render(
        request, "settlement.html", day=day, rows=rows,
        payments_fen=sum(r.payments_fen for r in rows),
        refunds_fen=sum(r.refunds_fen for r in rows),
    )  # fmt: skip


async def fee_items_csv(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    raw = request.query.get("month", "") or console.today().strftime("%Y-%m")
    month = _day(raw + "-01")
    assert month is not None
    rows = await console.queries.fee_items_of_month(_scope(request), month)
    return _csv(reports.fee_items_csv(rows), f"fee-items-{raw}.csv")


async def reconciliation_csv(request: web.Request) -> web.Response:
    """Each provider's result for the day and its differences: office-wide, so only for
    the roles that see the whole office (a head or clerk finds the differences of their
    own orders under Supervision)."""
    console = request.app[CONSOLE]
    scope = _scope(request)
    if not scope.office_wide:
        raise OutOfScope("the reconciliation with the providers is office-wide")
    day = _day(request.query.get("day", "")) or console.today()
    runs = await console.queries.reconciliation_runs(day)
    differences = await console.queries.differences(scope, day=day)
    return _csv(reports.reconciliation_csv(runs, differences), f"reconciliation-{day}.csv")


def _csv(text: str, name: str) -> web.Response:
    return web.Response(
        text=text,
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
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
        raise web.HTTPTooManyRequests(text="Too many lookups from this address; wait a minute.")
    found = None
    if code.isdigit() and number.isdigit() and check and len(check) <= 12:
        found = await console.queries.receipt(code, number)
    if found is not None and not hmac.compare_digest(
        str(found["check_code"]).encode(), check.upper().encode()
    ):
        found = None  # the same answer as an unknown number
    return found, True


async def payer_page(request: web.Request) -> web.Response:
    receipt, asked = await _payer_receipt(request)
    if receipt is None:
        return render(
            request, "payer.html", status=404 if asked else 200, receipt=None, asked=asked,
            q=request.query, refunds=[],
        )  # fmt: skip
    refunds = await request.app[CONSOLE].queries.refunds_of_order(receipt["order_id"])
    return render(
        request, "payer.html", receipt=receipt, asked=True, q=request.query, refunds=refunds
    )


async def payer_document(request: web.Request) -> web.Response:
    receipt, _ = await _payer_receipt(request)
    if receipt is None:
        raise web.HTTPNotFound(text="not found")
    return web.Response(text=render_html(receipt), content_type="text/html")


def build_app(console: Console) -> web.Application:
    app = web.Application(middlewares=[security_headers, staff_session])
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
            web.get("/orders", search_page),
            web.get("/orders/{order_id}", order_page),
            web.post("/orders/{order_id}/cancel", cancel_order),
            web.get("/supervision", supervision_page),
            web.get("/reports", reports_page),
            web.get("/reports/settlement.csv", settlement_csv),
            web.get("/reports/settlement", settlement_print),
            web.get("/reports/fee-items.csv", fee_items_csv),
            web.get("/reports/reconciliation.csv", reconciliation_csv),
            web.get("/payer/receipt", payer_page),
            web.get("/payer/receipt/document", payer_document),
            web.static("/static", HERE / "static"),
        ]
    )
    return app


async def _closing(app: web.Application) -> None:
    app[CLOSING].set()  # ends the event streams, so that shutdown does not wait on them


async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/today")

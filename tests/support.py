"""Helpers shared by the test tiers: a small deployment, unique ids, sandbox codes."""

from __future__ import annotations

import ast
import asyncio
import gc
import tomllib
import uuid
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.access import pki
from orchestrator.config import Config, parse_config
from orchestrator.domain.catalog import FeeCategory, PricedLine
from orchestrator.domain.order import Order
from orchestrator.domain.states import (
    AttemptEvent,
    AttemptState,
    Channel,
    OrderState,
    PayMode,
    RefundState,
)
from orchestrator.pos import sandbox_code
from orchestrator.providers.engine import SystemClock
from orchestrator.sandbox.bank import BankReply, SandboxBank

T = TypeVar("T")

# Where each sandbox behaviour (docs/DOMAIN.md) must end, per channel: (order, attempt).
PAID = (OrderState.PAID, AttemptState.SUCCEEDED)
REVERSED = (OrderState.AWAITING_PAYMENT, AttemptState.REVERSED)
FAILED = (OrderState.AWAITING_PAYMENT, AttemptState.FAILED)
EXPECTED: dict[str, dict[Channel, tuple[OrderState, AttemptState]]] = {
    "0000": dict.fromkeys(Channel, PAID),
    "1111": dict.fromkeys(Channel, PAID),
    "2222": dict.fromkeys(Channel, REVERSED),
    "3333": dict.fromkeys(Channel, FAILED),
    # UnionPay answers a sale without a clear answer with a reversal (冲正), never a query.
    "4444": {Channel.WECHAT: PAID, Channel.ALIPAY: PAID, Channel.UNIONPAY: REVERSED},
    "5555": {Channel.WECHAT: PAID, Channel.ALIPAY: PAID, Channel.UNIONPAY: REVERSED},
    # An unsigned 5xx may hide a payment: query, then reverse (the trade number is closed).
    # WeChat's reverse answers ORDER_NOT_EXIST, which is no "nothing to undo" while the
    # payment code may still be used: it is asked again until twice the code's life after
    # the pay call (payment_code_life_s, scaled here), then a query that finds no trade
    # ends it REVERSED.
    "6666": dict.fromkeys(Channel, REVERSED),
    "7777": dict.fromkeys(Channel, PAID),
    "8888": dict.fromkeys(Channel, REVERSED),
    "9999": dict.fromkeys(Channel, FAILED),
    # Paid behind an unsigned 503 (a resend: "already paid"); a signed answer about another
    # trade. The query decides; UnionPay reverses the sale it got no answer to.
    "1212": {Channel.WECHAT: PAID, Channel.ALIPAY: PAID, Channel.UNIONPAY: REVERSED},
    "1313": {Channel.WECHAT: PAID, Channel.ALIPAY: PAID, Channel.UNIONPAY: REVERSED},
    # Pay at once; their refunds behave as REFUND_EXPECTED says.
    "2323": dict.fromkeys(Channel, PAID),
    "2424": dict.fromkeys(Channel, PAID),
    "2525": dict.fromkeys(Channel, PAID),
}
# Where a refund of a payment made with each code ending must end (the others: SUCCEEDED).
REFUND_EXPECTED = {
    "2323": RefundState.SUCCEEDED,  # after ~20 s (scaled) of PENDING, amount reserved
    "2424": RefundState.SUCCEEDED,  # first answer lost, resend "already refunded"
    "2525": RefundState.FAILED,  # a final business refusal: the amount is released
}
PROVIDER_CHANNELS = (Channel.WECHAT, Channel.ALIPAY, Channel.UNIONPAY)


def sample_data() -> dict[str, Any]:
    text = resources.files("orchestrator.sample").joinpath("windowpay.toml").read_text()
    return tomllib.loads(text)


def small_config_data(
    *,
    prefix: str = "E",
    time_scale: float = 0.05,
    service_points: int = 3,
    windows: int = 6,
    channels: dict[str, dict[str, Any]] | None = None,
    **service: Any,
) -> dict[str, Any]:
    """Service points {prefix}1.., each with windows {prefix}1W1.. and a terminal
    {prefix}1T1.. per window. A unique prefix keeps tests apart in one Redis."""
    data = sample_data()
    data["notify"]["port"] = 0  # a listener, if any, says where it is
    data["service"].update(
        time_scale=time_scale, grpc_port=0, metrics_port=0, console_port=0, **service
    )
    for channel, changes in (channels or {}).items():
        data.setdefault("channels", {}).setdefault(channel, {}).update(changes)
    # UnionPay's settlement day ends at 23:00: a test deployment reconciles by calendar
    # day, so that a test run between 23:00 and midnight finds its day's trades
    # (tests/unit/test_matcher.py holds the 23:00 day).
    data.setdefault("providers", {}).setdefault("UNIONPAY", {})["settlement_day_ends"] = "00:00"
    # A WeChat payment code's life (one minute) at the deployment's time scale, as every
    # other provider time here, so a reverse of a trade never made settles in time.
    data["providers"].setdefault("WECHAT", {})["payment_code_life_s"] = 60.0 * time_scale
    points = [f"{prefix}{i}" for i in range(1, service_points + 1)]
    # Its own service points, so not the sample's offices and sites: one implicit office.
    for place in ("province", "offices", "sites"):
        data.pop(place, None)
    for principal in data["access"].pop("offices", {}):  # the sample's offices' principals
        del data["access"]["principals"][principal]
    data["service_points"] = [
        {
            "id": sp,
            "name": f"test point {sp}",
            "windows": [f"{sp}W{j}" for j in range(1, windows + 1)],
        }
        for sp in points
    ]
    data["terminals"] = {f"{sp}T{j}": f"{sp}W{j}" for sp in points for j in range(1, windows + 1)}
    data["supervisors"] = {f"{sp}S": sp for sp in points}
    return data


def two_offices(data: dict[str, Any]) -> dict[str, Any]:
    """A small deployment's service points split between two city offices: office
    {prefix}A holds the first, office {prefix}B the others; each service point is a site
    of its own, {sp}S (a main hall for the first of each office, else a convenience
    point). Changes `data` and returns it."""
    points = [sp["id"] for sp in data["service_points"]]
    prefix = points[0][:-1]
    halves = {f"{prefix}A": points[:1], f"{prefix}B": points[1:]}
    data["province"] = {"name": "test province"}
    data["offices"] = [{"id": office, "name": f"office {office}"} for office in halves]
    data["sites"] = [
        {
            "id": f"{sp}S",
            "office": office,
            "kind": "main_hall" if n == 0 else "convenience_point",
            "service_points": [sp],
        }
        for office, held in halves.items()
        for n, sp in enumerate(held)
    ]
    return data


def small_config(**kwargs: Any) -> Config:
    return parse_config(small_config_data(**kwargs), "test config")


def unique_prefix() -> str:
    return "X" + uuid.uuid4().hex[:5].upper()


def new_id(prefix: str = "r") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def nonce() -> str:
    """The random part of a provider-facing id, as the service point draws it."""
    return uuid.uuid4().hex[:6].upper()


def provider_id(prefix: str = "P") -> str:
    """A unique out_trade_no / out_refund_no every channel accepts (8-40 letters, digits)."""
    return f"{prefix}{uuid.uuid4().hex[:20]}"


def code(channel: Channel, ending: str = "0000") -> str:
    return "" if channel is Channel.CASH else sandbox_code(channel.value.lower(), ending)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    within: float = 20.0,
    every: float = 0.05,
) -> T:
    """Poll `probe` until `accept` holds, failing with the last value after `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if accept(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within} s; last value: {value!r}")
        await asyncio.sleep(every)


class Asked:
    """Counts the queries of one trade that reach a sandbox bank of this process, so that
    a test waits until the engine has asked instead of sleeping for a while."""

    def __init__(self, bank: SandboxBank, out_trade_no: str, monkeypatch: Any) -> None:
        self.times = 0
        query = bank.query

        async def counted(asked_about: str) -> BankReply:
            if asked_about == out_trade_no:
                self.times += 1
            return await query(asked_about)

        monkeypatch.setattr(bank, "query", counted)

    async def count(self) -> int:
        return self.times


LINES = (PricedLine("EXM-K1", "科目一", "次", FeeCategory.EXAM, 1, 8000, 8000),)


class Recorded:
    """A real order behind the recorder: the engine's events must be legal transitions."""

    def __init__(self, clock: SystemClock) -> None:
        self.clock = clock
        self.order, _ = Order.create(
            order_id="SP01-E", business_no="B", service_point_id="SP01", window_id="W01",
            payer_name="p", lines=LINES, catalog_version="v", now=clock.now_ms(),
            expires_at=clock.now_ms() + 10**9,
        )  # fmt: skip
        self.events: list[AttemptEvent] = []

    def start(self, channel: Channel, mode: PayMode = PayMode.PAYER_PRESENTS_CODE) -> str:
        attempt_id = self.order.next_attempt_id(nonce())
        self.order.start_attempt(
            attempt_id=attempt_id, channel=channel, terminal_id="T", request_id="r",
            now=self.clock.now_ms(), mode=mode,
        )  # fmt: skip
        return attempt_id

    async def __call__(
        self,
        event: AttemptEvent,
        *,
        trade_no: str = "",
        reason: str = "",
        qr_code_url: str = "",
        qr_expires_at: int | None = None,
    ) -> None:
        self.events.append(event)
        self.order.record_attempt(
            self.order.attempts[-1].attempt_id, event, self.clock.now_ms(),
            trade_no=trade_no, reason=reason, qr_code_url=qr_code_url,
            qr_expires_at=qr_expires_at,
        )  # fmt: skip


def prometheus_tool(name: str) -> str:
    """Prometheus's own binaries (prometheus, promtool), unpacked by `make tools`."""
    import shutil

    unpacked = Path(__file__).resolve().parent.parent / ".tools/prometheus/usr/bin" / name
    found = str(unpacked) if unpacked.exists() else shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is missing: run `make tools` (make test does)")
    return found


def parse_python(path: Path) -> ast.Module:
    """`ast.parse` a source file with the garbage collector held off.

    CPython 3.11's AST constructor is not re-entrant: if a collection during the parse runs
    a finalizer that formats a traceback (asyncio logging a lost task's error does), the
    traceback code parses too and the outer parse fails with "AST constructor recursion
    depth mismatch" (CPython issue 106905 and its kin).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(path.read_text(encoding="utf-8"), str(path))
    finally:
        if enabled:
            gc.enable()


def bare_certificate(authority: pki.Authority, name: str, sans: list[Any]) -> tuple[bytes, bytes]:
    """A client certificate (and its key, PEM) that `authority`'s CA signs as any CA
    would issue one: common name `name`, these subjectAltNames, nothing of windowpay's
    making. For the tests of what a certificate must carry to get a role."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_key = serialization.load_pem_private_key(authority.paths.ca_key.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem

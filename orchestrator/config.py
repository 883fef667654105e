"""Typed configuration from TOML: deployment (service points, windows, terminals),
fee catalogs, provider playbooks and service settings.

Every error names the file and the entry that is wrong, so a bad config fails at start
with a message an operator can act on.

Nothing here knows a particular channel: each provider channel's playbook and provider
settings start from the defaults.toml its package ships (orchestrator/channels/<name>/),
and the deployment's [channels.<NAME>] and [providers.<NAME>] override them key by key. A
provider setting the channel's defaults do not declare is refused, so a misspelt name
cannot leave a default (a sandbox merchant id, say) silently in place.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, time
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.domain.catalog import Catalog, FeeCategory, FeeItem, FeeSchedule
from orchestrator.domain.ids import SERVICE_POINT_ID
from orchestrator.domain.places import Office, Places, Site, SiteKind
from orchestrator.domain.playbook import NoAnswer, Playbook
from orchestrator.domain.principals import AccessSettings, Limits, Pins, Role
from orchestrator.domain.states import Channel

WINDOW_ID = re.compile(r"^[A-Z0-9]{1,12}$")
TERMINAL_ID = re.compile(r"^[A-Z0-9]{1,16}$")
PLACE_ID = re.compile(r"[A-Z0-9][A-Z0-9-]{0,15}", re.ASCII)  # an office's or a site's
PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
TRUST_DOMAIN = re.compile(r"[a-z0-9][a-z0-9._-]{0,254}", re.ASCII)
PROVIDER_CHANNELS: tuple[Channel, ...] = tuple(
    channel for channel in Channel if channel is not Channel.CASH
)


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ServicePoint:
    id: str
    name: str
    windows: tuple[str, ...]


@dataclass(frozen=True)
class Deployment:
    service_points: tuple[ServicePoint, ...]
    window_service_point: Mapping[str, str]  # window id -> service point id
    terminal_window: Mapping[str, str]  # terminal id -> window id
    places: Places  # province -> offices -> sites -> these service points

    def service_point_of_window(self, window_id: str) -> str | None:
        return self.window_service_point.get(window_id)

    def actor_groups(self, per_actor: int) -> list[tuple[str, ...]]:
        """Service points split into the groups that one actor each serves."""
        ids = [sp.id for sp in self.service_points]
        return [tuple(ids[i : i + per_actor]) for i in range(0, len(ids), per_actor)]


@dataclass(frozen=True)
class Settings:
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    timezone: str = "Asia/Shanghai"
    business_day_end: time = time(17, 30)
    pay_hold_s: float = 60.0
    idempotency_ttl_s: int = 90_000
    service_points_per_actor: int = 1
    time_scale: float = 1.0
    expiry_sweep_interval_s: float = 60.0
    # A refund still waiting for the provider's final word after this long is reported
    # (windowpay_refunds_overdue, alert RefundPendingTooLong). It stays pending.
    refund_pending_alert_s: float = 3600.0
    # The embedded Redis's fsync policy: "always" (no acknowledged write is ever lost)
    # or "everysec" (the last second may be lost in a power cut).
    redis_appendfsync: str = "always"
    # Replicas that must confirm every change (WAIT) before it is acknowledged; None:
    # 1 when redis_url names a Redis Cluster, 0 for a single server (docs/SCALING.md).
    redis_replicas_ack: int | None = None
    redis_replica_wait_ms: int = 2000
    batch_max: int = 256
    batches_in_flight: int = 2
    # Command batches go to an actor on the same node over its Unix socket rather than
    # as Ray tasks (actors/direct.py); Ray remains the fallback and the way to find it.
    direct_actor_channel: bool = True
    # Where Ray places the service-point actors on a cluster of several nodes: "pack"
    # (all on the node that deploys them) or "spread" (dealt round the live nodes at
    # start); either way an actor is restarted on a node that is left when its own is
    # lost. With actor_resource, only on nodes started with that custom resource
    # (`ray start --resources '{"<name>": 1}'`); an actor whose every such node is lost
    # waits for one to join (docs/SCALING.md).
    actor_placement: str = "pack"
    actor_resource: str = ""
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464  # the front door's /metrics and /sd (0: a free port)
    console_host: str = "127.0.0.1"
    console_port: int = 8470  # the staff console and payer lookup (0: a free port)
    log_level: str = "info"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class SandboxSettings:
    confirm_after_s: float = 8.0  # 1111: the payer confirms after this long
    slow_query_s: float = 2.0  # 7777: every query answers after this long
    hang_s: float = 90.0  # 5555: the pay call answers after this long (past any timeout)
    refund_processing_s: float = 20.0  # 2323: every refund stays processing this long


@dataclass(frozen=True)
class ReceiptSettings:
    """The electronic receipt's code parts and the unit that issues it."""

    region: str = "53"  # 2 digits: the province
    kind: str = "01"  # 2 digits: receipt class
    form: str = "01"  # 2 digits: receipt type
    issuing_unit: str = "昆明市公安局交通管理支队车辆管理所"


@dataclass(frozen=True)
class OfficeContact:
    """Whom a payer calls when a payment looks wrong (the payer's page shows it)."""

    name: str = ""  # "" : the receipts' issuing unit
    phone: str = ""  # "" : the page sends the payer to a window instead
    hours: str = ""


@dataclass(frozen=True)
class Credentials:
    """Where a channel's keys, certificates and secrets are, under the names its package
    reads (its defaults.toml lists them): *_file is relative to keys_dir unless absolute,
    *_env names an environment variable that holds the secret instead, *_id and *_name
    identify a key or certificate. A secret's value never appears in the config
    (docs/PROVIDERS.md)."""

    names: Mapping[str, str] = field(default_factory=dict)
    certificate_refresh_s: float = 12 * 3600.0

    def __getitem__(self, name: str) -> str:
        """The named setting; "" when the channel's defaults and the deployment omit it."""
        return self.names.get(name, "")


Scalar = str | bool | int | float


@dataclass(frozen=True)
class Options:
    """A channel's own settings that are neither credentials nor common to every provider
    (WeChat's `partner`, say). Its defaults.toml declares each with a default, whose type
    the deployment's value must have; a name it does not declare is refused at start."""

    values: Mapping[str, Scalar] = field(default_factory=dict)

    def flag(self, name: str) -> bool:
        value = self.values[name]
        if not isinstance(value, bool):
            raise TypeError(f"{name} is {value!r}, not true or false")
        return value

    def text(self, name: str) -> str:
        value = self.values[name]
        if not isinstance(value, str):
            raise TypeError(f"{name} is {value!r}, not a string")
        return value

    def number(self, name: str) -> float:
        value = self.values[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{name} is {value!r}, not a number")
        return float(value)


@dataclass(frozen=True)
class RecordSettings:
    """The PostgreSQL record and how long Redis keeps what the record already holds.
    Durations are multiplied by the service's time_scale."""

    retention_s: float = 7 * 86_400.0  # an order's keys, once final and drained
    case_retention_s: float = 400 * 86_400.0  # a paid order's business-case claim, after
    drain_batch: int = 500  # changes copied per PostgreSQL transaction
    housekeeping_s: float = 30.0  # how often streams are trimmed and lag measured
    redis_maxmemory_mb: int = 2048  # the embedded Redis (noeviction)
    # The audit public key's SHA-256 (64 hex digits, as `audit verify` prints it): when
    # set, `audit verify` and `audit close` refuse any other key (a swapped audit.pub).
    audit_public_key_sha256: str = ""


@dataclass(frozen=True)
class ProviderSettings:
    """How to reach one provider. An empty base_url means the local sandbox."""

    base_url: str = ""
    merchant_id: str = ""  # the provider's id of the merchant (mchid, app_id, merId...)
    app_id: str = ""  # the merchant's application id, where the provider has one
    credentials: Credentials = field(default_factory=Credentials)
    # Where the provider posts its signed notifications (its notify_url, or UnionPay's
    # backUrl). Empty: the listener's own URL for the channel, [notify] public_url +
    # /notify/<channel> (NotifySettings.url_for).
    notify_url: str = ""
    options: Options = field(default_factory=Options)  # the channel's own (defaults.toml)


@dataclass(frozen=True)
class ServedTls:
    """How one of windowpay's HTTP servers (the console, the notification listener) is
    reached: over TLS with the certificate named here; over TLS with the development
    PKI's when none is named (a deployment with certificates made elsewhere must name
    one); or, with plain_http, over plain HTTP for the TLS reverse proxy in front."""

    cert_file: str = ""  # PEM: the certificate, then any intermediates
    key_file: str = ""
    plain_http: bool = False


@dataclass(frozen=True)
class NotifySettings:
    """The listener for the providers' signed notifications (`windowpay serve` runs it)."""

    host: str = "127.0.0.1"
    port: int = 8471  # 0: a free port
    # The URL the providers are given (behind a reverse proxy, its public address);
    # empty: the listener's own, https://host:port (http:// with plain_http), filled in
    # by `windowpay serve` once it listens (base_url reads http://host:port before).
    public_url: str = ""
    # A notification signed longer ago than this (WeChat's timestamp) is refused as a
    # replay; Alipay's notify_time may be up to 48 h old (its own resends), but no further
    # ahead of our clock than this.
    max_skew_s: float = 300.0
    # How long a notification waits for the attempt's driver to apply it before the
    # provider is answered "not received" (it sends it again).
    apply_wait_s: float = 4.0
    tls: ServedTls = field(default_factory=ServedTls)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def url_for(self, channel: Channel) -> str:
        return f"{self.base_url}/notify/{channel.value.lower()}"


@dataclass(frozen=True)
class ConsoleNetwork:
    """How the console is reached: its TLS, and where its clients come from. Behind a
    TLS reverse proxy every request's peer is the proxy: the addresses listed here are
    believed about the client's own (their `X-Forwarded-For`), so that the console's
    limits count each client."""

    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    tls: ServedTls = field(default_factory=ServedTls)


@dataclass(frozen=True)
class Config:
    deployment: Deployment
    fees: FeeSchedule
    settings: Settings
    playbooks: Mapping[Channel, Playbook]
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    providers: Mapping[Channel, ProviderSettings] = field(default_factory=dict)
    keys_dir: str = "keys"  # relative to the data directory unless absolute
    receipts: ReceiptSettings = field(default_factory=ReceiptSettings)
    office: OfficeContact = field(default_factory=OfficeContact)
    access: AccessSettings = field(default_factory=AccessSettings)
    record: RecordSettings = field(default_factory=RecordSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    console: ConsoleNetwork = field(default_factory=ConsoleNetwork)
    source: str = "<memory>"
    path: Path | None = None  # the file it came from (None: the shipped sample)

    def playbook(self, channel: Channel) -> Playbook:
        """The channel's playbook with the time scale applied."""
        return self.playbooks[channel].scaled(self.settings.time_scale)

    def with_settings(self, **changes: Any) -> Config:
        return replace(self, settings=replace(self.settings, **changes))

    def sandboxed(self) -> list[Channel]:
        """Channels served by the local sandbox (no base_url configured)."""
        return [channel for channel, p in self.providers.items() if not p.base_url]

    def notify_url(self, channel: Channel) -> str:
        """Where `channel` posts its notifications: configured, or the listener's."""
        return self.providers[channel].notify_url or self.notify.url_for(channel)

    def with_notify(self, **changes: Any) -> Config:
        return replace(self, notify=replace(self.notify, **changes))

    def with_base_urls(self, urls: Mapping[Channel, str]) -> Config:
        providers = dict(self.providers)
        for channel, url in urls.items():
            providers[channel] = replace(providers[channel], base_url=url)
        return replace(self, providers=providers)


# ---- typed getters -------------------------------------------------------------


class _Table:
    """A TOML table that knows where it sits, so every error names the setting."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}.{key}: {problem}" if key else f"{self.where}: {problem}")

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise self.fail(key, "missing")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(key, f"expected {kind.__name__}, got {value!r}")
        return value

    def number(self, key: str, default: float | object = ..., minimum: float = 0.0) -> float:
        value = float(self.get(key, float, default))
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {value}")
        return value

    def table(self, key: str) -> _Table:
        return _Table(self.get(key, dict, {}), f"{self.where}.{key}")

    def tables(self, key: str) -> list[_Table]:
        items = self.get(key, list, [])
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise self.fail(f"{key}[{i}]", "expected a table")
            out.append(_Table(item, f"{self.where}.{key}[{i}]"))
        return out


def _parse_time(t: _Table, key: str, default: time) -> time:
    value = t.data.get(key)
    if value is None:
        return default
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        try:
            return time.fromisoformat(value)
        except ValueError:
            pass
    raise t.fail(key, f"expected a time like '17:30', got {value!r}")


def _settings(t: _Table) -> Settings:
    base = Settings()
    settings = Settings(
        grpc_host=t.get("grpc_host", str, base.grpc_host),
        grpc_port=t.get("grpc_port", int, base.grpc_port),
        timezone=t.get("timezone", str, base.timezone),
        business_day_end=_parse_time(t, "business_day_end", base.business_day_end),
        pay_hold_s=t.number("pay_hold_s", base.pay_hold_s),
        idempotency_ttl_s=t.get("idempotency_ttl_s", int, base.idempotency_ttl_s),
        service_points_per_actor=t.get(
            "service_points_per_actor", int, base.service_points_per_actor
        ),
        time_scale=t.number("time_scale", base.time_scale, minimum=0.0001),
        expiry_sweep_interval_s=t.number("expiry_sweep_interval_s", base.expiry_sweep_interval_s),
        refund_pending_alert_s=t.number(
            "refund_pending_alert_s", base.refund_pending_alert_s, minimum=0.001
        ),
        redis_appendfsync=t.get("redis_appendfsync", str, base.redis_appendfsync),
        redis_replicas_ack=t.get("redis_replicas_ack", int, base.redis_replicas_ack),
        redis_replica_wait_ms=t.get("redis_replica_wait_ms", int, base.redis_replica_wait_ms),
        batch_max=t.get("batch_max", int, base.batch_max),
        batches_in_flight=t.get("batches_in_flight", int, base.batches_in_flight),
        direct_actor_channel=t.get("direct_actor_channel", bool, base.direct_actor_channel),
        actor_placement=t.get("actor_placement", str, base.actor_placement),
        actor_resource=t.get("actor_resource", str, base.actor_resource),
        metrics_host=t.get("metrics_host", str, base.metrics_host),
        metrics_port=t.get("metrics_port", int, base.metrics_port),
        console_host=t.get("console_host", str, base.console_host),
        console_port=t.get("console_port", int, base.console_port),
        log_level=t.get("log_level", str, base.log_level),
    )
    if settings.redis_appendfsync not in ("always", "everysec"):
        raise t.fail("redis_appendfsync", "must be always or everysec")
    if settings.redis_replicas_ack is not None and settings.redis_replicas_ack < 0:
        raise t.fail("redis_replicas_ack", "must be 0 or more")
    if settings.redis_replica_wait_ms < 1:
        raise t.fail("redis_replica_wait_ms", "must be at least 1 (WAIT 0 would wait forever)")
    if settings.actor_placement not in ("pack", "spread"):
        raise t.fail("actor_placement", "must be pack or spread")
    if settings.log_level not in ("debug", "info", "warning", "error"):
        raise t.fail("log_level", "must be debug, info, warning or error")
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise t.fail("timezone", f"unknown time zone {settings.timezone!r}") from None
    if settings.idempotency_ttl_s < 86_400:
        raise t.fail("idempotency_ttl_s", "must keep keys at least 24 h (86400 s)")
    if settings.service_points_per_actor < 1:
        raise t.fail("service_points_per_actor", "must be at least 1")
    if not 1 <= settings.grpc_port <= 65535 and settings.grpc_port != 0:
        raise t.fail("grpc_port", "must be a TCP port (0 picks a free one)")
    if settings.batch_max < 1 or settings.batches_in_flight < 1:
        raise t.fail("batch_max", "batch_max and batches_in_flight must be at least 1")
    return settings


def _playbook(t: _Table) -> Playbook:
    no_answer = t.get("no_answer", str)
    try:
        mode = NoAnswer(no_answer)
    except ValueError:
        raise t.fail("no_answer", f"must be 'query' or 'reverse', got {no_answer!r}") from None
    playbook = Playbook(
        pay_timeout_s=t.number("pay_timeout_s", minimum=0.001),
        query_timeout_s=t.number("query_timeout_s", minimum=0.001),
        query_interval_s=t.number("query_interval_s", minimum=0.001),
        confirm_window_s=t.number("confirm_window_s"),
        reverse_not_before_s=t.number("reverse_not_before_s"),
        reverse_interval_s=t.number("reverse_interval_s", minimum=0.001),
        reverse_give_up_after_s=t.number("reverse_give_up_after_s"),
        pay_retries=t.get("pay_retries", int),
        no_answer=mode,
        follow_up_interval_s=t.number("follow_up_interval_s", 60.0, minimum=0.001),
        follow_up_window_s=t.number("follow_up_window_s", 86_400.0),
        qr_expiry_s=t.number("qr_expiry_s", 120.0, minimum=1.0),
        qr_follow_up_s=t.number("qr_follow_up_s", 300.0),
    )
    if playbook.reverse_give_up_after_s <= max(
        playbook.reverse_not_before_s, playbook.confirm_window_s
    ):
        raise t.fail(
            "reverse_give_up_after_s",
            "must come after both confirm_window_s and reverse_not_before_s",
        )
    return playbook


def _catalogs(root: _Table) -> FeeSchedule:
    tables = root.tables("catalogs")
    if not tables:
        raise root.fail("catalogs", "at least one [[catalogs]] entry is required")
    catalogs = []
    versions: set[str] = set()
    for t in tables:
        version = t.get("version", str)
        if version in versions:
            raise t.fail("version", f"catalog version {version!r} appears twice")
        versions.add(version)
        effective = t.get("effective_from", date)
        items: dict[str, FeeItem] = {}
        for it in t.tables("items"):
            code = it.get("code", str)
            if code in items:
                raise it.fail("code", f"fee code {code!r} appears twice in catalog {version}")
            category = it.get("category", str)
            try:
                fee_category = FeeCategory(category)
            except ValueError:
                raise it.fail(
                    "category", f"must be 'production' or 'exam', got {category!r}"
                ) from None
            name = it.get("name", str)
            if not name.strip():
                raise it.fail("name", "the item's official Chinese name is required")
            price = it.get("price_fen", int)
            if price <= 0:
                raise it.fail("price_fen", f"must be positive, got {price}")
            items[code] = FeeItem(
                code=code,
                category=fee_category,
                name=name,
                unit=it.get("unit", str),
                price_fen=price,
                name_en=it.get("name_en", str, ""),
            )
        if not items:
            raise t.fail("items", f"catalog {version} has no items")
        catalogs.append(Catalog(version=version, effective_from=effective, items=items))
    return FeeSchedule(catalogs)


def _deployment(root: _Table, office_name: str) -> Deployment:
    service_points: list[ServicePoint] = []
    window_sp: dict[str, str] = {}
    for t in root.tables("service_points"):
        sp_id = t.get("id", str)
        if not SERVICE_POINT_ID.fullmatch(sp_id):
            raise t.fail("id", f"{sp_id!r} must be 1-8 capital letters or digits")
        if any(sp.id == sp_id for sp in service_points):
            raise t.fail("id", f"service point {sp_id} appears twice")
        windows = t.get("windows", list)
        if not windows:
            raise t.fail("windows", f"service point {sp_id} has no windows")
        for w in windows:
            if not isinstance(w, str) or not WINDOW_ID.match(w):
                raise t.fail("windows", f"{w!r} must be 1-12 capital letters or digits")
            if w in window_sp:
                raise t.fail("windows", f"window {w} already belongs to {window_sp[w]}")
            window_sp[w] = sp_id
        service_points.append(ServicePoint(sp_id, t.get("name", str, sp_id), tuple(windows)))
    if not service_points:
        raise root.fail("service_points", "at least one [[service_points]] entry is required")
    terminals = root.table("terminals")
    terminal_window: dict[str, str] = {}
    for terminal_id in terminals.data:
        window = terminals.get(terminal_id, str)
        if not TERMINAL_ID.match(terminal_id):
            raise terminals.fail(terminal_id, "terminal ids are 1-16 capital letters or digits")
        if window not in window_sp:
            raise terminals.fail(terminal_id, f"bound to unknown window {window}")
        terminal_window[terminal_id] = window
    points = tuple(sp.id for sp in service_points)
    places = _places(root, points, office_name)
    return Deployment(tuple(service_points), window_sp, terminal_window, places)


def _places(root: _Table, points: tuple[str, ...], office_name: str) -> Places:
    """[province], [[offices]] and [[sites]]: each site names its office and lists its
    service points. Without [[offices]] the deployment is one office (the implicit one)."""
    offices, sites, province = root.tables("offices"), root.tables("sites"), root.table("province")
    if not offices:
        for name, given in (("sites", sites), ("province", province.data)):
            if given:
                raise root.fail(name, "is given without [[offices]]: declare the offices too")
        return Places.implicit(office_name, points)
    _known(province, "name")
    declared: dict[str, tuple[_Table, str, str]] = {}  # id -> its table, name, city
    for t in offices:
        _known(t, "id", "name", "city")
        office_id = _place_id(t, set(declared), "office")
        declared[office_id] = (t, t.get("name", str), t.get("city", str, ""))
    site_of: dict[str, str] = {}  # service point -> its site
    kept: dict[str, list[Site]] = {office_id: [] for office_id in declared}
    for t in sites:
        # Offices and sites share ids; every site kept so far holds a service point.
        site = _site(t, set(declared) | set(site_of.values()), declared, points, site_of)
        kept[site.office_id].append(site)
    homeless = [sp for sp in points if sp not in site_of]
    if homeless:
        many = "s" if len(homeless) > 1 else ""
        raise root.fail("sites", f"no site holds service point{many} {', '.join(homeless)}")
    built = []
    for office_id, (t, name, city) in declared.items():
        if not kept[office_id]:
            raise t.fail("id", f"office {office_id} has no sites")
        built.append(Office(office_id, name, city, tuple(kept[office_id])))
    return Places.of(province.get("name", str, ""), tuple(built))


def _site(
    t: _Table,
    taken: set[str],
    offices: Mapping[str, object],
    points: tuple[str, ...],
    site_of: dict[str, str],
) -> Site:
    """One [[sites]] entry, its service points entered in `site_of` (service point ->
    site) once checked against those already there."""
    _known(t, "id", "office", "kind", "name", "service_points")
    site_id = _place_id(t, taken, "site")
    office_id = t.get("office", str)
    if office_id not in offices:
        raise t.fail("office", f"site {site_id} names unknown office {office_id!r}; "
                     f"the offices are {', '.join(offices)}")  # fmt: skip
    kind = t.get("kind", str)
    if kind not in SiteKind.__members__.values():
        kinds = ", ".join(k.value for k in SiteKind)
        raise t.fail("kind", f"unknown kind of site {kind!r}; one of {kinds}")
    listed = t.get("service_points", list)
    if not listed:
        raise t.fail("service_points", f"site {site_id} has no service points")
    for sp in listed:
        if not isinstance(sp, str) or sp not in points:
            raise t.fail("service_points", f"site {site_id} lists unknown service point {sp!r}")
        if sp in site_of:
            raise t.fail("service_points", f"service point {sp} is in two sites: "
                         f"{site_of[sp]} and {site_id}")  # fmt: skip
        site_of[sp] = site_id
    name = t.get("name", str, site_id)
    return Site(site_id, office_id, SiteKind(kind), name, tuple(listed))


def _place_id(t: _Table, taken: set[str], what: str) -> str:
    """An office's or site's id: well formed, and no other office's or site's."""
    place_id: str = t.get("id", str)
    if not PLACE_ID.fullmatch(place_id):
        raise t.fail("id", f"{place_id!r} must be 1-16 capital letters, digits or '-'")
    if place_id in taken:
        raise t.fail("id", f"{what} id {place_id} appears twice (offices and sites share ids)")
    return place_id


def _providers(root: _Table) -> tuple[dict[Channel, ProviderSettings], str]:
    table = root.table("providers")
    channels = [channel.value for channel in PROVIDER_CHANNELS]
    for name in table.data:
        if name not in channels and name != "keys_dir":
            raise table.fail(name, f"unknown provider; the providers are {', '.join(channels)}")
    providers = {}
    for channel in PROVIDER_CHANNELS:
        declared = channel_defaults(channel).get("provider", {})
        given = table.table(channel.value)
        _check_names(given, declared)
        t = _over_defaults(given, _settings_of(declared))
        base_url = t.get("base_url", str, "")
        if base_url and not base_url.startswith(("http://", "https://")):
            raise t.fail("base_url", f"must be an http(s) URL or empty, got {base_url!r}")
        providers[channel] = ProviderSettings(
            base_url=base_url.rstrip("/"),
            merchant_id=t.get("merchant_id", str, ""),
            app_id=t.get("app_id", str, ""),
            credentials=_credentials(t, given),
            notify_url=t.get("notify_url", str, ""),
            options=_options(t, declared),
        )
        if not providers[channel].merchant_id:
            raise t.fail("merchant_id", "is required")
        _check_required(t, declared, live=bool(base_url))
    return providers, table.get("keys_dir", str, "keys")


CREDENTIAL_SUFFIXES = ("_file", "_env", "_id", "_name")
SECRET_SUFFIXES = ("_key", "_password", "_secret")  # a secret's own value: never here
PROVIDER_FIELDS = {"base_url", "merchant_id", "app_id", "notify_url", "certificate_refresh_s"}
REQUIRES = "_requires"  # a defaults.toml list: what a live channel, or a switch on, needs
TWINS = {"_file": "_env", "_env": "_file"}  # a secret is named by a file or a variable


def _settings_of(declared: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a channel's [provider] defaults declare (its *_requires lists aside)."""
    return {name: value for name, value in declared.items() if not name.endswith(REQUIRES)}


def _check_names(given: _Table, declared: Mapping[str, Any]) -> None:
    """Refuses a secret written out, and any name the channel does not read (a typo must
    not leave a default silently in place)."""
    known = set(PROVIDER_FIELDS)
    for name in _settings_of(declared):
        known.add(name)
        for suffix, twin in TWINS.items():
            if name.endswith(suffix):
                known.add(name.removesuffix(suffix) + twin)
    for name in given.data:
        if name.endswith(SECRET_SUFFIXES):
            raise given.fail(
                name, f"secrets never go in the config: name a file ({name}_file) "
                f"or an environment variable ({name}_env)"
            )  # fmt: skip
        if name not in known:
            reads = ", ".join(sorted(known))
            raise given.fail(name, f"unknown setting (a typo?); this channel reads {reads}")


def _credentials(t: _Table, given: _Table) -> Credentials:
    """Every *_file, *_env, *_id and *_name entry of the provider's table (defaults laid
    under the deployment's `given` ones)."""
    names = {
        name: t.get(name, str)
        for name in t.data
        if name.endswith(CREDENTIAL_SUFFIXES) and name not in PROVIDER_FIELDS
    }
    for name, value in names.items():
        secret = name.removesuffix("_env")
        if name.endswith("_env") and value and f"{secret}_file" in given.data:
            raise t.fail(name, f"name either {secret}_file or {secret}_env, not both")
    refresh = t.number("certificate_refresh_s", 12 * 3600.0, minimum=60.0)
    return Credentials(names, certificate_refresh_s=refresh)


def _options(t: _Table, declared: Mapping[str, Any]) -> Options:
    """The channel's other settings, each of the type its default has."""
    values: dict[str, Scalar] = {}
    for name, default in _settings_of(declared).items():
        if name in PROVIDER_FIELDS or name.endswith(CREDENTIAL_SUFFIXES):
            continue
        if not isinstance(default, str | bool | int | float):
            raise t.fail(name, f"the channel's default {default!r} is not a single value")
        values[name] = t.get(name, type(default))
    return Options(values)


def _check_required(t: _Table, declared: Mapping[str, Any], *, live: bool) -> None:
    """`live_requires` names what a live channel (one with a base_url) must set. Any other
    `<switch>_requires` names what a true/false `<switch>` brings with it: required when
    the switch is on, refused when it is off (set without the switch, it would go unused)."""
    for key, names in declared.items():
        if not key.endswith(REQUIRES):
            continue
        switch = key.removesuffix(REQUIRES)
        if switch == "live":
            on, when = live, "when base_url is set (a live gateway)"
        else:
            on, when = t.get(switch, bool), f"when {switch} = true"
        for name in names:
            if on and not t.data.get(name):
                raise t.fail(name, f"is required {when}")
            if not on and switch != "live" and t.data.get(name):
                raise t.fail(name, f"is set, but {switch} = false: set {switch} = true or drop it")


def _receipts(t: _Table) -> ReceiptSettings:
    default = ReceiptSettings()
    settings = ReceiptSettings(
        region=t.get("region", str, default.region),
        kind=t.get("kind", str, default.kind),
        form=t.get("form", str, default.form),
        issuing_unit=t.get("issuing_unit", str, default.issuing_unit),
    )
    for name in ("region", "kind", "form"):
        value = getattr(settings, name)
        if len(value) != 2 or not value.isdigit():
            raise t.fail(name, f"must be 2 digits, got {value!r}")
    return settings


def _office(t: _Table, receipts: ReceiptSettings) -> OfficeContact:
    phone = t.get("phone", str, "")
    if phone and not all(c.isdigit() or c in " -+()" for c in phone):
        raise t.fail("phone", f"digits, spaces, '-', '+' and brackets only, got {phone!r}")
    return OfficeContact(
        name=t.get("name", str, "") or receipts.issuing_unit,
        phone=phone,
        hours=t.get("hours", str, ""),
    )


def _positive(t: _Table, key: str, default: int) -> int:
    value: int = t.get(key, int, default)
    if value < 1:
        raise t.fail(key, f"must be at least 1, got {value}")
    return value


def _access(root: _Table, deployment: Deployment) -> AccessSettings:
    t = root.table("access")
    default = AccessSettings()
    principals: dict[str, Role] = dict(default.principals)
    named = t.table("principals")
    if named.data:
        principals = {}
        for name in named.data:
            role = named.get(name, str)
            if not PRINCIPAL.fullmatch(name):
                raise named.fail(name, "principal names are 1-64 letters, digits or . _ -")
            if name in deployment.terminal_window:
                raise named.fail(name, "is a terminal; terminals come from [terminals]")
            try:
                principals[name] = Role(role)
            except ValueError:
                raise named.fail(name, f"unknown role {role!r}") from None
            if principals[name] is Role.TERMINAL:
                raise named.fail(name, "terminals come from [terminals]")
    subscribers = _subscribers(t, principals)
    offices = _principal_offices(t, principals, deployment)
    supervisors = root.table("supervisors")
    points = {sp.id for sp in deployment.service_points}
    for supervisor in supervisors.data:
        sp = supervisors.get(supervisor, str)
        if not TERMINAL_ID.fullmatch(supervisor):
            raise supervisors.fail(supervisor, "supervisor ids are 1-16 capital letters or digits")
        if sp not in points:
            raise supervisors.fail(supervisor, f"belongs to unknown service point {sp}")
    lim, pin = Limits(), Pins()
    limits = t.table("limits")
    pins = t.table("pins")
    settings = AccessSettings(
        pki_dir=t.get("pki_dir", str, default.pki_dir),
        ca_file=t.get("ca_file", str, ""),
        server_cert_file=t.get("server_cert_file", str, ""),
        server_key_file=t.get("server_key_file", str, ""),
        crl_file=t.get("crl_file", str, ""),
        revocation=t.get("revocation", str, default.revocation),
        client_ca_file=t.get("client_ca_file", str, ""),
        trust_domain=t.get("trust_domain", str, default.trust_domain),
        principals=principals,
        subscribers=subscribers,
        supervisors=dict(supervisors.data),
        offices=offices,
        limits=Limits(
            max_request_bytes=_positive(limits, "max_request_bytes", lim.max_request_bytes),
            terminal_calls=_positive(limits, "terminal_calls", lim.terminal_calls),
            other_calls=_positive(limits, "other_calls", lim.other_calls),
            terminal_rate=limits.number("terminal_rate", lim.terminal_rate, minimum=0.001),
            terminal_burst=_positive(limits, "terminal_burst", lim.terminal_burst),
            business_rate=limits.number("business_rate", lim.business_rate, minimum=0.001),
            business_burst=_positive(limits, "business_burst", lim.business_burst),
            other_rate=limits.number("other_rate", lim.other_rate, minimum=0.001),
            other_burst=_positive(limits, "other_burst", lim.other_burst),
            settlement_calls=_positive(limits, "settlement_calls", lim.settlement_calls),
            streams=_positive(limits, "streams", lim.streams),
            stream_queue=_positive(limits, "stream_queue", lim.stream_queue),
            stream_stall_s=limits.number("stream_stall_s", lim.stream_stall_s, minimum=0.01),
            ack_ids=_positive(limits, "ack_ids", lim.ack_ids),
            max_cash_fen=_positive(limits, "max_cash_fen", lim.max_cash_fen),
        ),
        pins=Pins(
            attempts=_positive(pins, "attempts", pin.attempts),
            window_s=_positive(pins, "window_s", pin.window_s),
            lockout_s=_positive(pins, "lockout_s", pin.lockout_s),
            terminal_attempts=_positive(pins, "terminal_attempts", pin.terminal_attempts),
        ),
    )
    given = [settings.ca_file, settings.server_cert_file, settings.server_key_file]
    if any(given) and not all(given):
        raise t.fail("ca_file", "ca_file, server_cert_file and server_key_file go together")
    _check_trust(t, settings)
    return settings


def _check_trust(t: _Table, access: AccessSettings) -> None:
    """Revocation and the certificates' binding: never off without the config saying so."""
    if access.revocation not in ("crl", "none"):
        raise t.fail("revocation", f'must be "crl" or "none", got {access.revocation!r}')
    if access.revocation == "none" and access.crl_file:
        raise t.fail("revocation", '"none" with a crl_file: remove one of them')
    if access.provisioned and access.revocation == "crl" and not access.crl_file:
        raise t.fail(
            "crl_file",
            "certificates made elsewhere need their CA's revocation list; or say "
            'revocation = "none" to run without one',
        )
    if access.client_ca_file and not access.provisioned:
        raise t.fail("client_ca_file", "goes with ca_file (certificates made elsewhere)")
    if not TRUST_DOMAIN.fullmatch(access.trust_domain):
        raise t.fail("trust_domain", "lower-case letters, digits, dots, - and _ only")


def _principal_offices(
    t: _Table, principals: Mapping[str, Role], deployment: Deployment
) -> dict[str, str]:
    """[access.offices] places a backoffice or auditor principal in one city office: it
    reads that office's orders and receipts and settles its service points only."""
    table = t.table("offices")
    offices: dict[str, str] = {}
    for name in table.data:
        office = table.get(name, str)
        if principals.get(name) not in (Role.BACKOFFICE, Role.AUDITOR):
            raise table.fail(
                name, "is not a backoffice or auditor principal of [access.principals]"
            )
        if not deployment.places.explicit or deployment.places.office(office) is None:
            raise table.fail(name, f"names office {office!r}, which [[offices]] does not declare")
        offices[name] = office
    return offices


def _subscribers(t: _Table, principals: Mapping[str, Role]) -> dict[str, str]:
    """[access.subscribers] binds each WatchPayments subscriber id to the business
    principal that alone may read, acknowledge and hold its events. The older list
    `business_subscribers` binds its ids to the one business principal there is."""
    business = sorted(name for name, role in principals.items() if role is Role.BUSINESS)
    table = t.table("subscribers")
    if table.data and "business_subscribers" in t.data:
        raise t.fail("business_subscribers", "give [access.subscribers] or this, not both")
    if "business_subscribers" in t.data:
        if len(business) != 1:
            raise t.fail(
                "business_subscribers",
                "binds to the one business principal; with several, say whose each id is "
                "in [access.subscribers]",
            )
        ids = t.get("business_subscribers", list)
        bound = {sub: business[0] for sub in ids}
        where = t.fail
        key = "business_subscribers"
    elif table.data:
        bound = {sub: table.get(sub, str) for sub in table.data}
        where, key = table.fail, ""
    else:
        return {name: name for name in business}  # each its own name
    for sub, principal in bound.items():
        if not isinstance(sub, str) or not PRINCIPAL.fullmatch(sub):
            raise where(key or str(sub), f"{sub!r} is not a valid subscriber id")
        if principal not in business:
            raise where(key or sub, f"{principal!r} is not a business principal")
    return bound


def _record(t: _Table) -> RecordSettings:
    default = RecordSettings()
    settings = RecordSettings(
        retention_s=t.number("retention_s", default.retention_s),
        case_retention_s=t.number("case_retention_s", default.case_retention_s),
        drain_batch=t.get("drain_batch", int, default.drain_batch),
        housekeeping_s=t.number("housekeeping_s", default.housekeeping_s, minimum=0.01),
        redis_maxmemory_mb=t.get("redis_maxmemory_mb", int, default.redis_maxmemory_mb),
        audit_public_key_sha256=t.get("audit_public_key_sha256", str, "").lower(),
    )
    pinned = settings.audit_public_key_sha256
    if pinned and (len(pinned) != 64 or any(c not in "0123456789abcdef" for c in pinned)):
        raise t.fail("audit_public_key_sha256", "must be 64 hex digits (SHA-256)")
    if settings.drain_batch < 1:
        raise t.fail("drain_batch", "must be at least 1")
    if settings.redis_maxmemory_mb < 64:
        raise t.fail("redis_maxmemory_mb", "must be at least 64")
    return settings


def channel_defaults(channel: Channel) -> dict[str, Any]:
    """The defaults.toml the channel's package ships ({} when it ships none): read as
    data, so that config imports no channel code."""
    shipped = resources.files("orchestrator.channels").joinpath(
        channel.value.lower(), "defaults.toml"
    )
    if not shipped.is_file():
        return {}
    return tomllib.loads(shipped.read_text(encoding="utf-8"))


def _over_defaults(table: _Table, defaults: Mapping[str, Any]) -> _Table:
    """The deployment's table laid over the channel package's defaults, key by key."""
    return _Table({**defaults, **table.data}, table.where)


def parse_config(data: Mapping[str, Any], source: str = "<memory>") -> Config:
    root = _Table(data, source)
    channels = root.table("channels")
    playbooks = {}
    for channel in PROVIDER_CHANNELS:
        shipped = channel_defaults(channel).get("playbook", {})
        if channel.value not in channels.data and not shipped:
            raise channels.fail(channel.value, "missing playbook for this channel")
        playbooks[channel] = _playbook(_over_defaults(channels.table(channel.value), shipped))
    sandbox = root.table("sandbox")
    defaults = SandboxSettings()
    providers, keys_dir = _providers(root)
    receipts = _receipts(root.table("receipts"))
    office = _office(root.table("office"), receipts)
    deployment = _deployment(root, office.name)
    return Config(
        deployment=deployment,
        fees=_catalogs(root),
        settings=_settings(root.table("service")),
        playbooks=playbooks,
        sandbox=SandboxSettings(
            confirm_after_s=sandbox.number("confirm_after_s", defaults.confirm_after_s),
            slow_query_s=sandbox.number("slow_query_s", defaults.slow_query_s),
            hang_s=sandbox.number("hang_s", defaults.hang_s),
            refund_processing_s=sandbox.number("refund_processing_s", defaults.refund_processing_s),
        ),
        providers=providers,
        keys_dir=keys_dir,
        receipts=receipts,
        office=office,
        access=_access(root, deployment),
        record=_record(root.table("record")),
        notify=_notify(root.table("notify")),
        console=_console(root.table("console")),
        source=source,
    )


def _notify(t: _Table) -> NotifySettings:
    base = NotifySettings()
    _known(t, "host", "port", "public_url", "max_skew_s", "apply_wait_s", *TLS_SETTINGS)
    notify = NotifySettings(
        host=t.get("host", str, base.host),
        port=t.get("port", int, base.port),
        public_url=t.get("public_url", str, base.public_url),
        max_skew_s=t.number("max_skew_s", base.max_skew_s, minimum=1.0),
        apply_wait_s=t.number("apply_wait_s", base.apply_wait_s, minimum=0.1),
        tls=_served_tls(t),
    )
    if not 0 <= notify.port <= 65535:
        raise t.fail("port", "must be a TCP port (0 picks a free one)")
    if notify.public_url and not notify.public_url.startswith(("http://", "https://")):
        raise t.fail("public_url", f"must be an http(s) URL, got {notify.public_url!r}")
    return notify


TLS_SETTINGS = ("tls_cert_file", "tls_key_file", "plain_http")


def _known(t: _Table, *names: str) -> None:
    """A misspelt name must not leave a default in place (a TLS setting above all)."""
    for name in t.data:
        if name not in names:
            raise t.fail(name, f"unknown setting (a typo?); this table reads {', '.join(names)}")


def _served_tls(t: _Table) -> ServedTls:
    tls = ServedTls(
        cert_file=t.get("tls_cert_file", str, ""),
        key_file=t.get("tls_key_file", str, ""),
        plain_http=t.get("plain_http", bool, False),
    )
    if bool(tls.cert_file) != bool(tls.key_file):
        missing = "tls_key_file" if tls.cert_file else "tls_cert_file"
        raise t.fail(missing, "missing: tls_cert_file and tls_key_file go together")
    if tls.plain_http and tls.cert_file:
        raise t.fail("plain_http", "plain HTTP and a certificate to serve: remove one of them")
    return tls


def _console(t: _Table) -> ConsoleNetwork:
    _known(t, "trusted_proxies", *TLS_SETTINGS)
    proxies = []
    for entry in t.get("trusted_proxies", list, []):
        try:
            if not isinstance(entry, str):
                raise TypeError(entry)
            proxies.append(ipaddress.ip_network(entry))
        except (TypeError, ValueError):
            raise t.fail(
                "trusted_proxies", f"{entry!r} is not an address or network like '10.0.0.0/24'"
            ) from None
    return ConsoleNetwork(tuple(proxies), _served_tls(t))


def load_config(path: Path | None = None) -> Config:
    """Read a config file, or the sample deployment shipped with windowpay."""
    if path is None:
        text = resources.files("orchestrator.sample").joinpath("windowpay.toml").read_text()
        source = "sample windowpay.toml"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return replace(parse_config(data, source), path=path)

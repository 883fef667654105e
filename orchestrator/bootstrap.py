"""All wiring in one place: Redis, Ray and its actors, the front door. Nothing here
runs at import time."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from actors import local_cluster, runtime
from orchestrator.access.https import WebTls, served_url, web_tls
from orchestrator.access.setup import front_door_access, pki_dir, server_tls
from orchestrator.access.supervisors import DEV_PINS, Supervisors, ensure_dev_pins
from orchestrator.access.tls import ServerTls
from orchestrator.audit.roots import ensure_audit_key
from orchestrator.channels.registry import ensure_dev_keys
from orchestrator.channels.sandboxes import SandboxProcess
from orchestrator.config import Config
from orchestrator.console.commands import RouterCommands
from orchestrator.console.server import STAFF_FILE, start_console
from orchestrator.domain.states import Channel
from orchestrator.embedded_redis import EmbeddedRedis
from orchestrator.frontdoor.door import FrontDoor
from orchestrator.frontdoor.events import EventHub
from orchestrator.frontdoor.router import Router, Submitter
from orchestrator.frontdoor.server import FrontDoorServer
from orchestrator.frontdoor.telemetry import MetricsEndpoint, watch_health
from orchestrator.notify.listener import NotifyListener, bound_port, start_listener
from orchestrator.notify.wiring import build_verifiers
from orchestrator.providers.keys import ensure_receipt_secret
from orchestrator.record import migrate
from orchestrator.record.embedded import EmbeddedPostgres
from orchestrator.record.reader import RecordReader
from orchestrator.record.recorded_reads import RecordedReads
from orchestrator.runfile import RunInfo, forget
from orchestrator.store.connect import connect
from orchestrator.store.lockout import PinLockout
from orchestrator.store.order_events import OrderEventSource
from orchestrator.store.outbox import Subscriptions
from orchestrator.store.reads import OrderReads, RedisOrderReads
from orchestrator.telemetry import announce

log = logging.getLogger(__name__)


@dataclass
class Running:
    server: FrontDoorServer
    console: str  # the console's base URL ("" without a record)
    redis_url: str
    database_url: str | None
    ray_address: str
    submitters: dict[str, runtime.RaySubmitter]
    actors: runtime.Actors | None  # held so that Ray keeps the actors this process made
    stack: AsyncExitStack
    ray_lost: asyncio.Task[str]  # ends, with the reason, if the Ray node is lost

    async def stop_serving(self) -> None:
        await self.server.set_serving(False)

    async def close(self) -> None:
        await self.stack.aclose()


def record_pool(database_url: str, max_size: int = 4) -> AsyncConnectionPool:
    """A pool that opens in the background: the front door serves while PostgreSQL is
    away, answering from Redis alone."""
    return AsyncConnectionPool(
        database_url, min_size=1, max_size=max_size, open=False,
        check=AsyncConnectionPool.check_connection,
    )  # fmt: skip


async def open_pool(database_url: str, stack: AsyncExitStack) -> AsyncConnectionPool:
    pool = record_pool(database_url)
    await pool.open(wait=False)
    stack.push_async_callback(pool.close)
    return pool


async def start_front_door(
    config: Config,
    redis_url: str,
    submitters: dict[str, Submitter],
    stack: AsyncExitStack,
    tls: ServerTls,
    pki_dir: Path,
    database_url: str | None = None,
) -> FrontDoorServer:
    redis = connect(redis_url)
    stack.push_async_callback(redis.aclose)
    live = RedisOrderReads(redis)
    reads: OrderReads = live
    if database_url:  # orders that left Redis are read from the record
        reads = RecordedReads(live, RecordReader(await open_pool(database_url, stack)))
    hub = EventHub(OrderEventSource(redis))
    await hub.start()
    stack.push_async_callback(hub.stop)
    settings = config.settings
    points = [sp.id for sp in config.deployment.service_points]
    router = Router(submitters, max_batch=settings.batch_max, in_flight=settings.batches_in_flight)
    pins = config.access.pins
    lockout = PinLockout(
        redis, attempts=pins.attempts, window_s=pins.window_s, lockout_s=pins.lockout_s,
        terminal_attempts=pins.terminal_attempts,
    )  # fmt: skip
    supervisors = Supervisors(config.access, pki_dir, lockout)
    server = FrontDoorServer(
        FrontDoor(config, reads, Subscriptions(redis, points), router, hub, supervisors),
        settings.grpc_host,
        settings.grpc_port,
        front_door_access(config, tls),
    )
    await server.start()
    stack.push_async_callback(server.stop)
    await server.set_serving(True)
    endpoint = MetricsEndpoint(redis, router, points)
    await endpoint.start(settings.metrics_host, settings.metrics_port)
    stack.push_async_callback(endpoint.stop)
    server.metrics_address = endpoint.address
    lanes = [lane.submitter for lane in router.lanes]
    tasks = [
        asyncio.create_task(
            announce(redis, "windowpay-frontdoor", endpoint.address, {"grpc": server.address})
        ),
        asyncio.create_task(watch_health(redis, lanes, server.set_serving)),
    ]
    stack.push_async_callback(_cancel, tasks)
    return server


async def open_listener(
    config: Config, stack: AsyncExitStack, tls: WebTls | None = None
) -> tuple[NotifyListener, Config]:
    """Listen for provider notifications, over TLS with `tls`; the config returned knows
    the bound port, and tells the providers the listener's own URL unless it names a
    public one."""
    listener = NotifyListener()
    host = config.notify.host
    context = tls.context() if tls else None
    runner = await start_listener(listener, host, config.notify.port, context)
    stack.push_async_callback(runner.cleanup)
    port = bound_port(runner)
    own = served_url(tls is not None, host, port)
    return listener, config.with_notify(port=port, public_url=config.notify.public_url or own)


def sandbox_urls(data_dir: Path, channels: Sequence[Channel]) -> dict[Channel, str]:
    """Where the sandboxes of the process serving from `data_dir` listen (its run.json);
    none known when it is not running."""
    run = RunInfo.read(data_dir)
    urls = run.providers if run else {}
    return {c: urls[c.value] for c in channels if c.value in urls}


async def _cancel(tasks: Sequence[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def start_service(
    config: Config,
    *,
    redis_url: str | None = None,
    database_url: str | None = None,
    data_dir: Path = Path("var"),
    ray_address: str | None = None,
    join: bool = False,
    local_nodes: int = 0,
) -> Running:
    """Start (or, with join, attach to) a deployment and serve its front door. With
    `local_nodes`, on a Ray cluster of that many nodes started here (actors/local_cluster.py),
    the service-point actors spread over them."""
    stack = AsyncExitStack()
    try:
        if local_nodes:
            cluster = local_cluster.start(local_nodes)
            stack.callback(cluster.shutdown)
            ray_address = cluster.address
            config = config.with_settings(actor_placement="spread")
            log.info("local Ray cluster of %d nodes at %s", local_nodes, ray_address)
        redis_url = redis_url or os.environ.get("REDIS_URL")
        if redis_url is None:
            embedded = EmbeddedRedis(
                data_dir / "redis",
                appendfsync=config.settings.redis_appendfsync,
                maxmemory_mb=config.record.redis_maxmemory_mb,
            )
            redis_url = embedded.start()
            stack.callback(embedded.stop)
            log.info("embedded Redis (append-only, fsync %s, password in %s) listening on "
                     "127.0.0.1:%d, data in %s", embedded.appendfsync,
                     embedded.data_dir / "password", embedded.port, embedded.data_dir)  # fmt: skip
        database_url = database_url or os.environ.get("DATABASE_URL")
        if database_url is None and not join:
            postgres = EmbeddedPostgres(data_dir / "pg")
            database_url = await asyncio.to_thread(postgres.start)
            stack.callback(postgres.stop)
            log.info("embedded PostgreSQL listening on 127.0.0.1:%d, data in %s",
                     postgres.port, postgres.data)  # fmt: skip
        if database_url and not join:
            await asyncio.to_thread(migrate.upgrade, database_url, zone=config.settings.timezone)
            log.info("record schema at revision %s", migrate.HEAD)
        keys_dir = (data_dir / config.keys_dir).resolve()
        audit_dir = (data_dir / "audit").resolve()  # the signed roots the drainer exports
        tls = server_tls(config, data_dir, create=not join)
        pki = pki_dir(config.access, data_dir)
        # the console's and the listener's certificates, refused before anything starts
        # (a joined process reads the deployment's, never makes them)
        notify_tls = web_tls(config, "notify", data_dir)
        console_tls = web_tls(config, "console", data_dir) if database_url else None
        console_context = console_tls.context() if console_tls else None
        if not join:
            ensure_receipt_secret(keys_dir)
            if ensure_audit_key(keys_dir):
                log.info("audit key written to %s (the database administrator must not "
                         "hold it)", keys_dir / "audit")  # fmt: skip
            if ensure_dev_pins(config.access, pki):
                log.info("development supervisor PINs written to %s", pki / DEV_PINS)
        # Every process listens, a joined one too: a load balancer at [notify] public_url
        # may send a notification to any of them (docs/SCALING.md). The providers are told
        # the URL by the actors, which the deploying process made with its config.
        public_url = config.notify.public_url
        listener, config = await open_listener(config, stack, notify_tls)
        own = served_url(notify_tls is not None, config.notify.host, config.notify.port)
        told = config.notify.base_url
        if join:
            told = public_url or "the deploying process's listener's URL"
        log.info("provider notifications taken on %s/notify/<channel> (told: %s)",
                 own, told)  # fmt: skip
        if join and config.sandboxed():  # its verifiers ask the deploying process's sandboxes
            config = config.with_base_urls(sandbox_urls(data_dir, config.sandboxed()))
        if config.sandboxed() and not join:
            ensure_dev_keys(keys_dir, config.sandboxed())
            notify_ca = notify_tls.dev_ca if notify_tls else None
            sandbox = SandboxProcess(config, keys_dir, data_dir, notify_ca=notify_ca)
            urls = sandbox.start()
            stack.callback(sandbox.stop)
            config = config.with_base_urls({c: urls[c] for c in config.sandboxed()})
            for channel, url in sorted(urls.items()):
                log.info("%s sandbox gateway listening on %s", channel, url)
        address = runtime.start(address=ray_address)
        if not ray_address or local_nodes:  # this process's Ray: left before it stops
            stack.callback(runtime.shutdown)
        log.info("Ray ready at %s", address)
        ray_lost = asyncio.create_task(runtime.watch_cluster())
        stack.push_async_callback(_cancel, [ray_lost])
        actors = None
        if join:
            submitters = runtime.join(config)
        else:
            actors = await runtime.deploy(
                config, redis_url, str(keys_dir), database_url, str(audit_dir)
            )
            submitters = actors.submitters
        log.info("%d service-point actors ready", len({s.name for s in submitters.values()}))
        stack.push_async_callback(runtime.close_submitters, list(submitters.values()))
        verifiers, clients = build_verifiers(config, keys_dir)
        for http in clients:
            stack.push_async_callback(http.close)
        listener.attach(verifiers, submitters)
        server = await start_front_door(
            config, redis_url, dict(submitters), stack, tls, pki, database_url
        )
        log.info("gRPC front door listening on %s", server.address)
        log.info("metrics on http://%s/metrics, service discovery on /sd", server.metrics_address)
        console = ""
        if database_url:
            pool = await open_pool(database_url, stack)
            commands = RouterCommands(server.door.router)
            console = await start_console(
                config, pool, commands, data_dir / STAFF_FILE, stack, tls=console_context
            )
            log.info("staff console on %s, payer lookup on %s/payer/receipt", console, console)
        if not join:
            RunInfo(
                grpc=server.address,
                redis_url=redis_url,
                keys_dir=str(keys_dir),
                config=str(config.path) if config.path else None,
                providers={c.value: p.base_url for c, p in config.providers.items()},
                pid=os.getpid(),
                pki_dir="" if config.access.provisioned else str(pki),
                ca=str(tls.ca),
                database_url=database_url or "",
                console=console,
            ).write(data_dir)
            stack.callback(forget, data_dir)
        return Running(
            server, console, redis_url, database_url, address, submitters, actors, stack, ray_lost
        )
    except BaseException:
        await stack.aclose()
        raise

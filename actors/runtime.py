"""Everything in windowpay that calls Ray lives here.

Starting or joining the Ray cluster, creating the named actors (one per group of
service points), and the adapter that turns an actor handle into the Submitter port
the front door uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# A single-machine Ray stays on loopback: without this, Ray resolves 127.0.0.1 to the
# host's outward address and listens there. It is read when Ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import psutil
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.direct import DirectLink, LinkBroken
from orchestrator.config import Config
from orchestrator.domain.commands import Command, Result
from orchestrator.metrics import ACTOR_BATCHES
from orchestrator.providers.notices import Notice, NoticeOutcome

log = logging.getLogger(__name__)

NAMESPACE = "windowpay"
RECEIPT_ISSUER = "receipts"
DRAINER = "record-drainer"


def start(*, num_cpus: int = 2, address: str | None = None) -> str:
    """Start a local Ray (loopback only, no dashboard) or join one; returns its address."""
    if not ray.is_initialized():
        # Ray installs its own SIGTERM/SIGINT handlers, which end the process at once; the
        # caller's (a clean stop) are put back as soon as Ray has started.
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        _init_retrying(num_cpus, address)
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
    return str(ray.get_runtime_context().gcs_address)


# Ray gives a new node's raylet a fixed 30 s to register with its GCS, then fails the
# start with a bare Exception. On two cores busy with other start-ups (the test tiers in
# parallel) that can happen once; the node is then shut down and started afresh.
LOCAL_START_ATTEMPTS = 3
LATE_RAYLET = "timed out during startup"


def _init_retrying(num_cpus: int, address: str | None) -> None:
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        before = {child.pid for child in psutil.Process().children(recursive=True)}
        try:
            _init(num_cpus, address)
            return
        except Exception as exc:  # Ray raises a bare Exception for a late raylet
            if address or LATE_RAYLET not in str(exc):
                raise
            log.warning("Ray's local node was late to start (attempt %d): %s", attempt, exc)
            # Ray fails inside its node's constructor, after the GCS and the raylet have
            # started and before it keeps the node: ray.shutdown() cannot see them. They
            # are this process's children, started by this attempt.
            _stop_children_since(before)
            ray.shutdown()
            if attempt == LOCAL_START_ATTEMPTS:
                raise


def _stop_children_since(before: set[int], grace_s: float = 5.0) -> None:
    """Stop this process's children (and theirs) that were not running before."""
    started = [c for c in psutil.Process().children(recursive=True) if c.pid not in before]
    for child in started:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(started, timeout=grace_s)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(alive, timeout=grace_s)


def _init(num_cpus: int, address: str | None) -> None:
    if address:
        ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING)
    else:
        # "local": always a Ray of its own, never one that RAY_ADDRESS or the address file
        # another cluster on this machine left under Ray's temp dir would name
        ray.init(
            address="local",
            num_cpus=num_cpus,
            namespace=NAMESPACE,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            logging_level=logging.WARNING,
        )


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()


def lost_daemons() -> list[str]:
    """The Ray daemons this process started (raylet, GCS, agents) that have died; empty
    when it joined another process's cluster."""
    node: Any = getattr(ray._private.worker.global_worker, "node", None)
    if node is None:
        return []
    return sorted({str(kind) for kind, _ in node.dead_processes()})


def node_alive() -> bool:
    """Whether the cluster (its GCS) still counts this process's Ray node as alive."""
    node_id = ray.get_runtime_context().get_node_id()
    nodes: Any = ray.nodes  # untyped in Ray
    return any(node["NodeID"] == node_id and node["Alive"] for node in nodes())


async def watch_cluster(*, every_s: float = 1.0, unreachable_after_s: float = 20.0) -> str:
    """Return, with the reason, once this process's Ray node or its connection to the
    cluster is lost for good: a daemon it started died (seen within `every_s`), the
    cluster declared its node dead, or the cluster did not answer for
    `unreachable_after_s`. Ray restarts dead actors but never a lost node."""
    loop = asyncio.get_running_loop()
    answered = loop.time()
    asking: asyncio.Future[bool] | None = None
    try:
        while True:
            dead = lost_daemons()
            if dead:
                return f"Ray daemons died: {', '.join(dead)}"
            if asking is None:
                asking = asyncio.ensure_future(asyncio.to_thread(node_alive))
            elif asking.done():
                try:
                    alive = asking.result()
                except Exception as error:  # counts as not answering
                    log.warning("Ray cluster did not answer: %s", error)
                else:
                    if not alive:
                        return "the Ray cluster declared this node dead"
                    answered = loop.time()
                asking = None
            if loop.time() - answered > unreachable_after_s:
                return f"the Ray cluster did not answer for {unreachable_after_s:.0f} s"
            await asyncio.sleep(every_s)
    finally:
        if asking is not None:
            asking.cancel()


def actor_name(group: Sequence[str]) -> str:
    return f"sp-{group[0]}" if len(group) == 1 else f"sp-{group[0]}-{group[-1]}"


class RaySubmitter:
    """The front door's view of one service-point actor: command batches over the
    actor's direct channel when it is on this node and reachable (actors/direct.py),
    otherwise, and whenever that channel breaks, as Ray tasks."""

    RECONNECT_AFTER_S = 1.0

    def __init__(self, handle: Any, name: str, *, direct: bool = True) -> None:
        self._handle = handle
        self.name = name
        self._direct = direct
        self._link: DirectLink | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._next_connect = 0.0

    async def submit(self, commands: Sequence[Command]) -> list[Result]:
        link = self._usable_link()
        if link is not None:
            try:
                results = await link.submit(commands)
                ACTOR_BATCHES.labels("direct").inc()
                return results
            except LinkBroken as error:
                log.info("direct channel to %s: %s; sending through Ray", self.name, error)
        ACTOR_BATCHES.labels("ray").inc()
        through_ray: list[Result] = await self._handle.submit.remote(list(commands))
        return through_ray

    def _usable_link(self) -> DirectLink | None:
        """The direct link if it is up; otherwise starts (at most once a second) finding
        it in the background, and this batch goes through Ray."""
        if self._link is not None and not self._link.broken:
            return self._link
        loop = asyncio.get_running_loop()
        if self._direct and self._connecting is None and loop.time() >= self._next_connect:
            self._next_connect = loop.time() + self.RECONNECT_AFTER_S
            self._connecting = loop.create_task(self._connect())
        return None

    async def _connect(self) -> None:
        try:
            if self._link is not None:
                await self._link.close()
                self._link = None
            address = await asyncio.wait_for(self._handle.direct_address.remote(), 10)
            if address is None or address[0] != ray.get_runtime_context().get_node_id():
                self._direct = False  # off, or on another node: Ray it is
                return
            self._link = await DirectLink.open(address[1])
            log.info("direct channel to %s open", self.name)
        except Exception as error:  # the actor restarting, or its socket not there yet
            log.debug("no direct channel to %s yet: %s", self.name, error)
        finally:
            self._connecting = None

    async def close(self) -> None:
        self._direct = False
        if self._connecting is not None:
            self._connecting.cancel()
        if self._link is not None:
            await self._link.close()

    async def observe(self, notice: Notice) -> NoticeOutcome:
        """A provider's verified notification, for the actor of its service point."""
        link = self._usable_link()
        if link is not None:
            try:
                observed: NoticeOutcome = await link.call("observe", notice)
                return observed
            except LinkBroken as error:
                log.info("direct channel to %s: %s; observing through Ray", self.name, error)
        outcome: NoticeOutcome = await self._handle.observe.remote(notice)
        return outcome

    async def ready(self) -> bool:
        return bool(await self._handle.ready.remote())

    async def status(self) -> dict[str, Any]:
        status: dict[str, Any] = await self._handle.status.remote()
        return status

    async def pid(self) -> int:
        return int(await self._handle.pid.remote())


@dataclass
class Actors:
    """The deployment's actors. Ray ends an actor when its last handle is dropped, so
    whoever deployed them keeps this for as long as they should live."""

    submitters: dict[str, RaySubmitter]  # per service point
    receipt_issuer: Any
    drainer: Any = None


async def deploy(
    config: Config,
    redis_url: str,
    keys_dir: str,
    database_url: str | None = None,
    audit_dir: str = "",
) -> Actors:
    """Create (or find) the actors of the deployment, once every one has recovered its
    state and is ready."""
    from actors.service_point import ServicePointActor

    remote = ray.remote(ServicePointActor)
    per_actor = config.settings.service_points_per_actor
    submitters: dict[str, RaySubmitter] = {}
    groups = config.deployment.actor_groups(per_actor)
    here = ray.get_runtime_context().get_node_id()
    for group, where in zip(groups, placements(config, len(groups), here), strict=True):
        name = actor_name(group)
        handle = remote.options(
            name=name,
            get_if_exists=True,
            num_cpus=0,
            max_restarts=-1,  # Ray restarts a dead actor; it recovers from Redis
            max_task_retries=-1,  # and re-runs its calls: every command is idempotent
            max_concurrency=1000,
            **where,
        ).remote(group, config, redis_url, keys_dir, database_url)
        submitter = RaySubmitter(handle, name, direct=config.settings.direct_actor_channel)
        for sp in group:
            submitters[sp] = submitter
    unique = {s.name: s for s in submitters.values()}
    issuer = _receipt_issuer(config, redis_url, keys_dir, here)
    drainer = (
        _drainer(config, redis_url, database_url, keys_dir, audit_dir, here)
        if database_url
        else None
    )
    await asyncio.gather(
        *(s.ready() for s in unique.values()),
        issuer.ready.remote(),
        *([drainer.ready.remote()] if drainer else []),
    )
    return Actors(submitters, issuer, drainer)


# What a placed actor asks Ray for: little enough that memory never limits how many fit
# on a node (an actor takes about 150 MB in fact, which Ray does not count). Ray keeps
# an actor's soft node affinity only if it asks for some resource: one that asks for
# none is placed on any node.
PLACED_ACTOR_MEMORY = 1024 * 1024


def placements(config: Config, actors: int, here: str) -> list[dict[str, Any]]:
    """The Ray options that place each of `actors` service-point actors as the config
    says, `here` being the deploying process's node. Each gets a soft affinity to its
    node, so that Ray restarts it on another node when its own is lost: "pack" puts them
    all on `here`; "spread" deals them round the live nodes (those holding
    `actor_resource`, if named). Ray's own "SPREAD" strategy was tried first: it put
    every zero-CPU actor on one node."""
    options: dict[str, Any] = {"memory": PLACED_ACTOR_MEMORY}
    if config.settings.actor_resource:
        # a share so small that any number of actors fit on a node holding the resource
        options["resources"] = {config.settings.actor_resource: 0.001}
    nodes = [here]
    if config.settings.actor_placement == "spread":
        listed: Any = ray.nodes  # untyped in Ray
        nodes = sorted(
            node["NodeID"]
            for node in listed()
            if node["Alive"]
            and (
                not config.settings.actor_resource
                or config.settings.actor_resource in node["Resources"]
            )
        )
        if not nodes:
            raise RuntimeError(
                f"no live Ray node holds the resource {config.settings.actor_resource!r} "
                "that actor_resource names"
            )
    return [
        {
            **options,
            "scheduling_strategy": NodeAffinitySchedulingStrategy(nodes[n % len(nodes)], soft=True),
        }
        for n in range(actors)
    ]


def near(here: str) -> dict[str, Any]:
    """The receipt issuer and the record drainer: on the deploying process's node, and
    on another when it is lost."""
    return {
        "memory": PLACED_ACTOR_MEMORY,
        "scheduling_strategy": NodeAffinitySchedulingStrategy(here, soft=True),
    }


def _drainer(
    config: Config, redis_url: str, database_url: str, keys_dir: str, audit_dir: str, here: str
) -> Any:
    from actors.drainer import DrainerActor

    return (
        ray.remote(DrainerActor)
        .options(
            name=DRAINER,
            get_if_exists=True,
            num_cpus=0,
            max_restarts=-1,  # restarted after a crash; replays what it had not acked
            max_concurrency=10,
            **near(here),
        )
        .remote(config, redis_url, database_url, keys_dir, audit_dir)
    )


async def actor_pid(handle: Any) -> int | None:
    """The actor's process id; None while Ray restarts it."""
    try:
        return int(await handle.pid.remote())
    except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
        return None


def _receipt_issuer(config: Config, redis_url: str, keys_dir: str, here: str) -> Any:
    from actors.receipts import ReceiptIssuerActor

    return (
        ray.remote(ReceiptIssuerActor)
        .options(
            name=RECEIPT_ISSUER,
            get_if_exists=True,
            num_cpus=0,
            max_restarts=-1,
            max_concurrency=100,
            **near(here),
        )
        .remote(config, redis_url, keys_dir)
    )


def join(config: Config) -> dict[str, RaySubmitter]:
    """Submitters for actors another process deployed (for extra front doors)."""
    submitters: dict[str, RaySubmitter] = {}
    for group in config.deployment.actor_groups(config.settings.service_points_per_actor):
        name = actor_name(group)
        handle = ray.get_actor(name, namespace=NAMESPACE)
        submitter = RaySubmitter(handle, name, direct=config.settings.direct_actor_channel)
        for sp in group:
            submitters[sp] = submitter
    return submitters


async def close_submitters(submitters: Sequence[RaySubmitter]) -> None:
    """Close the direct channels (each actor's submitter once)."""
    unique = {s.name: s for s in submitters}
    await asyncio.gather(*(s.close() for s in unique.values()))

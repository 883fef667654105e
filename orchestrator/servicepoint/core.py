"""ServicePointCore: the windows of one or more service points, as an ordinary class (the
Ray actor in actors/ only wraps it): their lifecycle and the batch pipeline.

Per batch of commands it does, through each command's handler (handlers.py: one class
per command type, which owns the command's checks, reads and decision):

1. prepare: validate and price each command (bad input is refused, nothing stored);
2. one Redis round trip: claim each request id, auth code and business case, fetch any
   stored response and any order not in memory. Then a closed order that has left Redis
   is recalled from the record if a refund or a late success's refund names it
   (recall.py), and a create's business case may need a second read;
3. decide every command synchronously against the orders in memory (orders.py): no
   await between reading and changing an order, which serialises each window;
4. one group commit, its journal entries linked into their chains (chained_commit.py);
   only then are the answers released and the provider work they name started.

Every order that still needs attention is in memory (loaded at start from Redis), so
"one payment in flight per window" is a dictionary lookup. The provider work (drivers
of attempts and refunds, each outcome recorded durably before the next call, and the
providers' notifications) is provider_work.py's; the expiry sweep is expiry.py's; open
orders the store had lost are lost.py's. Metrics go through an observer (observer.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from orchestrator.config import Config
from orchestrator.domain.commands import Command, Rejected, Result
from orchestrator.domain.errors import DomainError
from orchestrator.domain.order import Order
from orchestrator.domain.records import decode_order
from orchestrator.domain.states import Channel
from orchestrator.providers.engine import Clock, SystemClock
from orchestrator.providers.notices import Notice, NoticeOutcome
from orchestrator.providers.port import PaymentProvider
from orchestrator.servicepoint.chained_commit import ChainedCommit
from orchestrator.servicepoint.expiry import sweep_expired
from orchestrator.servicepoint.group_commit import GroupCommit
from orchestrator.servicepoint.handlers import CommandHandlers
from orchestrator.servicepoint.job import Job
from orchestrator.servicepoint.lost import LostOrders
from orchestrator.servicepoint.observer import CoreObserver, MetricsObserver
from orchestrator.servicepoint.orders import OrderBook
from orchestrator.servicepoint.provider_work import ProviderWork
from orchestrator.servicepoint.recall import OrderRecall, from_the_record
from orchestrator.store.port import RecordPort, StorePort

log = logging.getLogger(__name__)


def _exit_process(error: BaseException) -> None:
    log.critical("commit to Redis failed, restarting to recover from it: %s", error)
    import os

    os._exit(70)


class ServicePointCore:
    def __init__(
        self,
        service_points: Sequence[str],
        config: Config,
        store: StorePort,
        providers: Mapping[Channel, PaymentProvider],
        clock: Clock | None = None,
        on_fatal: Callable[[BaseException], None] = _exit_process,
        observer: CoreObserver | None = None,
        record: RecordPort | None = None,
    ) -> None:
        self.service_points = tuple(service_points)
        self._settings = config.settings
        self._store = store
        self._clock = clock or SystemClock()
        self._ttl_ms = config.settings.idempotency_ttl_s * 1000
        self._requests: dict[str, tuple[str, asyncio.Future[Result]]] = {}
        self._observer = observer or MetricsObserver()
        self._epochs: dict[str, int] = {}
        self._commit = GroupCommit(ChainedCommit(store, self._epochs), on_fatal)
        self._book = OrderBook(self._commit, config.settings.zone, self._ttl_ms)
        self._handlers = CommandHandlers(
            config, self._book, self._clock, self._observer, self.service_points
        )
        self._ready = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        self._reloader: asyncio.Task[None] | None = None
        self._work = ProviderWork(
            self.service_points, config, store, providers, self._clock, self._book,
            self._commit, self._observer,
        )  # fmt: skip
        self._lost = LostOrders(store, self._book, self._commit, self._clock, self._work.resume)
        retention_ms = int(config.record.retention_s * self._settings.time_scale * 1000)
        self._recall = OrderRecall(store, record, retention_ms, self._observer)

    # ---- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Take the service points over and resume every order that needs attention."""
        for sp in self.service_points:
            self._epochs[sp] = await self._store.take_over(sp)
            live = await self._store.open_orders(sp)
            for snapshot in live.snapshots:
                order = Order.from_record(decode_order(snapshot))
                self._book.open[order.order_id] = order
            if live.missing:
                await self._lost.report(sp, live.missing)
        resumed = sum(self._work.resume(order) for order in self._book.open.values())
        self._sweeper = asyncio.create_task(
            sweep_expired(self._settings, self._clock, self._book, self._commit)
        )
        if self._book.missing:
            self._reloader = asyncio.create_task(self._lost.take_back())
        self._ready.set()
        log.info(
            "service points %s ready: %d open orders, %d attempts resumed",
            ",".join(self.service_points),
            len(self._book.open),
            resumed,
        )

    async def stop(self) -> None:
        for task in (self._sweeper, self._reloader):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._work.stop()

    async def ready(self) -> bool:
        await self._ready.wait()
        return True

    def in_flight(self) -> dict[str, tuple[int, float, int]]:
        """Per service point: attempts not final, age of the oldest (s), how many late."""
        return self._work.in_flight(self.service_points)

    def missing_orders(self) -> dict[str, int]:
        """Per service point: open orders the store had lost, not yet back."""
        return self._lost.counts(self.service_points)

    def status(self) -> dict[str, Any]:
        return {
            "service_points": list(self.service_points),
            "open_orders": len(self._book.open),
            "missing_orders": len(self._book.missing),
            "drivers": len(self._work),
            "flushes": self._commit.flushes,
            "last_flush_waiters": self._commit.last_batch_size,
        }

    # ---- commands -------------------------------------------------------------------

    async def submit(self, commands: Sequence[Command]) -> list[Result]:
        await self._ready.wait()
        loop = asyncio.get_running_loop()
        results: list[Result | asyncio.Future[Result]] = []
        jobs: list[Job] = []
        for command in commands:
            self._observer.submitted(type(command).__name__)
            handler = self._handlers.of(command)
            try:
                job = handler.prepare(command, loop)
            except DomainError as error:
                results.append(Rejected(error.code, error.message))
                continue
            held = self._requests.get(command.request_id)
            if held is not None:  # a concurrent duplicate: share the first one's answer
                if held[0] == job.fingerprint:
                    handler.idempotency(command, "replayed")
                    results.append(held[1])
                else:
                    results.append(handler.conflict(command))
                continue
            self._requests[command.request_id] = (job.fingerprint, job.future)
            jobs.append(job)
            results.append(job.future)
        if jobs:
            await self._run(jobs)
        return [r if not isinstance(r, asyncio.Future) else await r for r in results]

    async def _run(self, jobs: list[Job]) -> None:
        try:
            reads = self._store.read_batch()
            for job in jobs:
                self._handlers.of(job.command).plan(job, job.command, reads)
            await reads.run()
            await from_the_record(jobs, self._recall, self._book, self._commit, self._work.resume)
            await self._handlers.read_more(jobs, self._store)
            for job in jobs:
                handler = self._handlers.of(job.command)
                try:
                    if job.refused is not None:
                        raise job.refused
                    job.result = handler.decide(job, job.command)
                except DomainError as error:
                    handler.release_claims(job, job.command)
                    job.result = Rejected(error.code, error.message)
            await self._commit.durable()
        except BaseException as error:
            for job in jobs:
                self._requests.pop(job.command.request_id, None)
                if not job.future.done():
                    # for a concurrent duplicate awaiting it; this caller gets the raise
                    job.future.set_exception(error)
                    job.future.exception()  # so an unawaited one is not logged as lost
            raise
        for job in jobs:
            self._requests.pop(job.command.request_id, None)
            self._work.start(job)
            for observe in job.after:
                observe()
            assert job.result is not None
            job.future.set_result(job.result)
        self._book.trim_recent()

    # ---- notifications ------------------------------------------------------------

    async def observe(self, notice: Notice) -> NoticeOutcome:
        """A provider's verified notification: one more answer about a trade or refund."""
        await self._ready.wait()
        return await self._work.observe(notice)


__all__ = ["ServicePointCore"]

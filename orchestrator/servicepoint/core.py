"""ServicePointCore: the windows of one or more service points, as an ordinary class.

The Ray actor in actors/ only wraps it. Per batch of commands it does, through each
command's handler (handlers.py, looked up by the command's type):

1. prepare: validate and price each command (bad input is refused, nothing stored);
2. one Redis round trip: claim each request id, auth code and business case, fetch any
   stored response and any order not in memory;
3. decide every command synchronously against the in-memory orders (this is what
   serialises each window: no await between reading and changing an order), over the
   orders in memory (orders.py);
4. one group commit; only then are the answers released and provider work started.

Every order that still needs attention is in memory (loaded at start from Redis), so
"one payment in flight per window" is a dictionary lookup. The provider work (the
drivers of attempts and refunds, each outcome recorded durably before the next call,
and the providers' notifications) is provider_work.py's. A closed order that has left
Redis is recalled from the record, put back into Redis, when a refund or a late
success's refund names it (recall.py), between steps 2 and 3. Metrics go through an
observer (observer.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from orchestrator.config import Config
from orchestrator.domain.commands import Command, Rejected, Result
from orchestrator.domain.errors import DomainError
from orchestrator.domain.order import Order
from orchestrator.domain.states import Channel, OrderState
from orchestrator.providers.engine import Clock, SystemClock
from orchestrator.providers.notices import Notice, NoticeOutcome
from orchestrator.providers.port import PaymentProvider
from orchestrator.servicepoint.group_commit import GroupCommit
from orchestrator.servicepoint.handlers import CommandHandlers
from orchestrator.servicepoint.job import Job, value_of
from orchestrator.servicepoint.lost import LostOrders
from orchestrator.servicepoint.observer import CoreObserver, MetricsObserver
from orchestrator.servicepoint.orders import OrderBook
from orchestrator.servicepoint.provider_work import ProviderWork
from orchestrator.servicepoint.recall import OrderRecall, RecordMismatch, RecordUnavailable
from orchestrator.store.chain import Head
from orchestrator.store.port import RecordPort, StorePort
from orchestrator.store.write_batch import WriteBatch

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
        self._config = config
        self._settings = config.settings
        self._store = store
        self._clock = clock or SystemClock()
        self._ttl_ms = config.settings.idempotency_ttl_s * 1000
        self._requests: dict[str, tuple[str, asyncio.Future[Result]]] = {}
        self._observer = observer or MetricsObserver()
        self._epochs: dict[str, int] = {}
        self._heads: dict[tuple[str, str], Head] = {}  # (service point, day) -> chain head
        self._commit = GroupCommit(self._flush, on_fatal)
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
        settings = config.settings
        retention_ms = int(config.record.retention_s * settings.time_scale * 1000)
        self._recall = OrderRecall(store, record, retention_ms, self._observer)

    # ---- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Take the service points over and resume every order that needs attention."""
        for sp in self.service_points:
            self._epochs[sp] = await self._store.take_over(sp)
            live = await self._store.open_orders(sp)
            for snapshot in live.snapshots:
                order = Order.from_record(orjson.loads(snapshot))
                self._book.open[order.order_id] = order
            if live.missing:
                await self._lost.report(sp, live.missing)
        resumed = sum(self._work.resume(order) for order in self._book.open.values())
        self._sweeper = asyncio.create_task(self._sweep_expired())
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
            await self._from_the_record(jobs)
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

    async def _from_the_record(self, jobs: list[Job]) -> None:
        """Orders the store no longer holds (closed, past the retention): forgotten here
        too, and for a refund or a late success's refund recalled from the record, so
        that the command decides on the order as it was last."""
        wanted: dict[str, list[Job]] = {}
        for job in jobs:
            if job.order is None or job.order.value is not None:
                continue
            order_id = job.order_id
            if not self._commit.unflushed(order_id):
                self._book.recent.pop(order_id, None)  # gone from the store: stale here
            if (
                job.recalls
                and value_of(job.response) is None
                and value_of(job.claim) in (None, job.fingerprint.encode())
                and self._book.find(order_id) is None
                and order_id not in self._book.missing
            ):
                wanted.setdefault(order_id, []).append(job)
        if not wanted:
            return
        answers = await asyncio.gather(
            *(self._recall.recall(order_id) for order_id in wanted), return_exceptions=True
        )
        for (order_id, waiting), answer in zip(wanted.items(), answers, strict=True):
            if isinstance(answer, RecordUnavailable | RecordMismatch):
                for job in waiting:
                    job.refused = answer
                continue
            if isinstance(answer, BaseException):
                raise answer
            for job in waiting:
                job.order = answer
            if answer.value is not None:
                order = Order.from_record(orjson.loads(answer.value))
                if order.is_open and self._book.find(order_id) is None:
                    # The record had it open (Redis had lost it): in our care again.
                    self._book.open[order_id] = order
                    self._work.resume(order)

    # ---- notifications ------------------------------------------------------------

    async def observe(self, notice: Notice) -> NoticeOutcome:
        """A provider's verified notification: one more answer about a trade or refund."""
        await self._ready.wait()
        return await self._work.observe(notice)

    async def _sweep_expired(self) -> None:
        while True:
            await self._clock.sleep(self._settings.expiry_sweep_interval_s)
            now = self._clock.now_ms()
            due = [
                order
                for order in self._book.open.values()
                if order.state is OrderState.AWAITING_PAYMENT and now >= order.expires_at
            ]
            for order in due:
                self._book.stage(order, [order.expire(now)])
            if due:
                await self._commit.durable()
                log.info("expired %d unpaid orders", len(due))

    async def _flush(self, batch: WriteBatch) -> None:
        """Link the batch's journal entries into their chains, then commit: the commit
        script moves each chain's head only if it is still the one linked after."""
        chains = batch.chain_days()
        unknown = sorted(c for c in chains if c not in self._heads)
        if unknown:  # a day this incarnation has not written yet: ask the store
            for which, head in zip(unknown, await self._store.chain_heads(unknown), strict=True):
                self._heads[which] = Head.decode(head)
        actors = {sp: f"{sp}/{epoch}" for sp, epoch in self._epochs.items()}
        moved = batch.link(self._heads, actors)
        await self._store.commit(batch, self._epochs)
        self._heads.update(moved)
        if len(self._heads) > 64:  # days long past: their heads are read again if needed
            for which in [c for c in self._heads if c not in chains]:
                del self._heads[which]


__all__ = ["ServicePointCore"]

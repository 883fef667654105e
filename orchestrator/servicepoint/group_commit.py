"""Group commit: writes staged by any number of callers go to Redis in one round trip.

Callers stage writes into `batch` synchronously, then await `durable()`. One flush runs
at a time; whatever was staged while it ran goes in the next. A failed flush leaves
memory ahead of Redis, so it is fatal: `on_failure` must end the process (the actor is
restarted and recovers from Redis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from orchestrator.metrics import COMMIT_BATCH_SIZE
from orchestrator.store.write_batch import WriteBatch


class GroupCommit:
    def __init__(
        self,
        flush: Callable[[WriteBatch], Awaitable[None]],
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self._flush = flush
        self._on_failure = on_failure
        self.batch = WriteBatch()
        self._waiters: list[asyncio.Future[None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._flushing = WriteBatch()
        self.flushes = 0
        self.last_batch_size = 0

    def durable(self) -> asyncio.Future[None]:
        """Resolves once everything staged so far is in Redis."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._run())
        return waiter

    async def _run(self) -> None:
        try:
            while self._waiters:
                batch, waiters = self.batch, self._waiters
                self.batch, self._waiters = WriteBatch(), []
                self._flushing = batch
                try:
                    await self._flush(batch)
                except BaseException as error:
                    task = asyncio.current_task()
                    if isinstance(error, asyncio.CancelledError) and task and task.cancelling():
                        for waiter in waiters:  # this task was cancelled: stopping
                            waiter.cancel()
                        raise
                    # Told to every waiter and to on_failure; not raised again from a task
                    # nobody awaits (bar what must end the process at once).
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(error)
                    self._on_failure(error)
                    if not isinstance(error, Exception | asyncio.CancelledError):
                        raise
                    return
                self.flushes += 1
                self.last_batch_size = len(waiters)
                COMMIT_BATCH_SIZE.observe(len(waiters))
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
        finally:
            self._flusher = None
            self._flushing = WriteBatch()

    def unflushed(self, order_id: str) -> bool:
        """Whether the order has writes staged or in flight (not yet durable)."""
        return order_id in self.batch.order_ids or order_id in self._flushing.order_ids

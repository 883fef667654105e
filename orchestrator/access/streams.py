"""Readers that stop reading are dropped: their stream ends with RESOURCE_EXHAUSTED
instead of growing the front door's memory.

grpc writes each yielded message and only then asks the stream for the next one, so a
reader that stops reading leaves the stream suspended at its yield. A timer per write
notices (`writing`), and so does a bounded event queue that fills up (`drop`). The
status is sent from a task of its own, since the stream itself is stuck in the write."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from orchestrator.metrics import ACCESS_LIMITED

Context = grpc.aio.ServicerContext[Any, Any]
ABORT_GRACE_S = 1.0
_ABORTS: set[asyncio.Task[None]] = set()  # held until done, so they are not collected


class SlowReader:
    def __init__(self, context: Context, role: str, stall_s: float) -> None:
        self._context = context
        self._call = asyncio.current_task()  # the call's own task: the stream runs in it
        self._role = role
        self._stall_s = stall_s
        self.dropped = False

    def drop(self, why: str) -> None:
        if self.dropped:
            return
        self.dropped = True
        ACCESS_LIMITED.labels(self._role, "slow_reader").inc()
        task = asyncio.ensure_future(self._abort(why))
        _ABORTS.add(task)
        task.add_done_callback(_ABORTS.discard)

    async def _abort(self, why: str) -> None:
        # abort raises by design (and the call may be gone already)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self._context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, why), ABORT_GRACE_S
            )
        # The status waits behind the message the reader does not take: end the call.
        if self._call is not None and not self._call.done():
            self._call.cancel()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around a yield: the reader must take the message within stall_s."""
        timer = asyncio.get_running_loop().call_later(
            self._stall_s,
            self.drop,
            f"the reader took no message for {self._stall_s:g} s; stream dropped",
        )
        try:
            yield
        finally:
            timer.cancel()

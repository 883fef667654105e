"""Ending server streams from outside them: readers that stop reading, and streams
whose certificate has been revoked.

grpc writes each yielded message and only then asks the stream for the next one, so a
reader that stops reading leaves the stream suspended at its yield. A timer per write
notices (`writing`), and so does a bounded event queue that fills up (`drop`). A
revoked certificate's streams are found by serial (`OpenStreams`). Either way the
status is sent from a task of its own (the stream may be stuck in a write, or waiting
for events), and then the call's task is cancelled, so that the stream's own cleanup
runs: its feed is unsubscribed and its leases (a WatchPayments subscriber's) released."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncGenerator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from orchestrator.metrics import ACCESS_LIMITED

Context = grpc.aio.ServicerContext[Any, Any]
ABORT_GRACE_S = 1.0
_ABORTS: set[asyncio.Task[None]] = set()  # held until done, so they are not collected


class OpenStream:
    """A server stream that can be ended from outside its own task."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self._call = asyncio.current_task()  # the call's own task: the stream runs in it
        self._events: AsyncGenerator[Any, None] | None = None
        self.ended = False

    def hold(self, events: AsyncGenerator[Any, None]) -> None:
        """The generator the call streams from: closed once the call is ended, so that
        its cleanup runs at once even when the call was stuck in a write."""
        self._events = events

    def end(self, code: grpc.StatusCode, why: str) -> None:
        if self.ended:
            return
        self.ended = True
        task = asyncio.ensure_future(self._abort(code, why))
        _ABORTS.add(task)
        task.add_done_callback(_ABORTS.discard)

    async def _abort(self, code: grpc.StatusCode, why: str) -> None:
        # abort raises by design (and the call may be gone already)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._context.abort(code, why), ABORT_GRACE_S)
        # The status may wait behind a message the reader does not take: end the call.
        if self._call is not None and not self._call.done():
            self._call.cancel()
            await asyncio.wait({self._call}, timeout=ABORT_GRACE_S)
        if self._events is not None:  # cancelled at a yield, it would wait for the GC
            with contextlib.suppress(Exception):
                await self._events.aclose()


class SlowReader:
    def __init__(self, stream: OpenStream, role: str, stall_s: float) -> None:
        self._stream = stream
        self._role = role
        self._stall_s = stall_s

    @property
    def dropped(self) -> bool:
        return self._stream.ended

    def drop(self, why: str) -> None:
        if self.dropped:
            return
        ACCESS_LIMITED.labels(self._role, "slow_reader").inc()
        self._stream.end(grpc.StatusCode.RESOURCE_EXHAUSTED, why)

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


class OpenStreams:
    """Every open server stream of this front door, by its certificate's serial."""

    def __init__(self) -> None:
        self._by_serial: defaultdict[int, set[OpenStream]] = defaultdict(set)

    @contextmanager
    def registered(self, serial: int, stream: OpenStream) -> Iterator[OpenStream]:
        self._by_serial[serial].add(stream)
        try:
            yield stream
        finally:
            streams = self._by_serial.get(serial)
            if streams is not None:
                streams.discard(stream)
                if not streams:
                    del self._by_serial[serial]

    def end(self, serials: Iterable[int], code: grpc.StatusCode, why: str) -> int:
        """End every stream of these certificates; how many were open."""
        ended = 0
        for serial in serials:
            for stream in list(self._by_serial.get(serial, ())):
                stream.end(code, why)
                ended += 1
        return ended

    def count(self) -> int:
        return sum(len(streams) for streams in self._by_serial.values())

"""Routing and batching: every command goes to the actor of its service point, and the
calls bound for one actor are coalesced into one Ray call per batch.

A lane sends at once while fewer than `in_flight` batches are outstanding; under load
the queue grows while batches are out, so batches grow with the load and the Ray hop
is paid once per batch, not once per call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from orchestrator.domain import ids
from orchestrator.domain.commands import Command, Rejected, Result
from orchestrator.domain.errors import ErrorCode, NotFound
from orchestrator.metrics import ACTOR_BATCH_SIZE, ACTOR_CALL_DURATION

log = logging.getLogger(__name__)


class Submitter(Protocol):
    name: str

    async def submit(self, commands: Sequence[Command]) -> list[Result]: ...

    async def ready(self) -> bool: ...


class Lane:
    def __init__(self, submitter: Submitter, max_batch: int, in_flight: int) -> None:
        self._submitter = submitter
        self._max_batch = max_batch
        self._in_flight_limit = in_flight
        self._queue: list[tuple[Command, asyncio.Future[Result]]] = []
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.commands = 0

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def name(self) -> str:
        return self._submitter.name

    @property
    def submitter(self) -> Submitter:
        return self._submitter

    def call(self, command: Command) -> asyncio.Future[Result]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._queue.append((command, future))
        if not self._scheduled and self._in_flight < self._in_flight_limit:
            # Send at the end of this loop iteration, with whatever else arrived in it.
            self._scheduled = True
            loop.call_soon(self._send)
        return future

    def _send(self) -> None:
        self._scheduled = False
        while self._queue and self._in_flight < self._in_flight_limit:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            self._in_flight += 1
            task = asyncio.create_task(self._deliver(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, batch: list[tuple[Command, asyncio.Future[Result]]]) -> None:
        self.batches += 1
        self.commands += len(batch)
        ACTOR_BATCH_SIZE.observe(len(batch))
        started = time.perf_counter()
        try:
            results = await self._submitter.submit([command for command, _ in batch])
        except Exception as error:
            log.warning(
                "actor %s failed a batch of %d: %s", self._submitter.name, len(batch), error
            )
            unavailable = Rejected(
                ErrorCode.UNAVAILABLE,
                f"service point actor {self._submitter.name} is unavailable; "
                "retry with the same request_id",
            )
            results = [unavailable] * len(batch)
        finally:
            ACTOR_CALL_DURATION.observe(time.perf_counter() - started)
            self._in_flight -= 1
            if self._queue:
                self._send()
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


class Router:
    def __init__(
        self, submitters: Mapping[str, Submitter], *, max_batch: int = 256, in_flight: int = 2
    ) -> None:
        lanes: dict[str, Lane] = {}
        self._lanes: dict[str, Lane] = {}
        for sp, submitter in submitters.items():
            lane = lanes.get(submitter.name)
            if lane is None:
                lane = lanes[submitter.name] = Lane(submitter, max_batch, in_flight)
            self._lanes[sp] = lane
        self.lanes = list(lanes.values())

    def serves(self, sp: str) -> bool:
        return sp in self._lanes

    def route(self, order_id: str) -> str:
        """The service point whose actor takes the order's commands: the one way from an
        order id to its actor. NotFound when the id names no service point served here."""
        try:
            sp = ids.service_point_of(order_id)
        except ids.MalformedOrderId:
            sp = ""
        if sp not in self._lanes:
            raise NotFound(f"order {order_id} not found")
        return sp

    def call(self, sp: str, command: Command) -> asyncio.Future[Result]:
        return self._lanes[sp].call(command)

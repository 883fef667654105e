"""The provider drivers of one core: each attempt or refund under way is one task, known
by its id, logged if it fails, and cancelled together when the core stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class DriverSupervisor:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, work_id: str, kind: str, run: Coroutine[Any, Any, None]) -> None:
        """Run a driver for the attempt or refund `work_id` until it ends."""
        task = asyncio.create_task(run, name=f"{kind} {work_id}")
        self._tasks[work_id] = task
        task.add_done_callback(lambda t: self._ended(work_id, kind, t))

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _ended(self, work_id: str, kind: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(work_id) is task:
            del self._tasks[work_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("%s %s driver failed", kind, work_id, exc_info=task.exception())

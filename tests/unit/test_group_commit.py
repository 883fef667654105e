"""Group commit's failures: every waiter is told, the actor is told to end, and nothing is
left for asyncio to report as lost; a cancelled flusher cancels its waiters."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from orchestrator.servicepoint.group_commit import GroupCommit
from orchestrator.store.write_batch import WriteBatch


class Refused(Exception):
    pass


def lost_reports() -> list[dict[str, Any]]:
    """What the running loop's exception handler is told from now on."""
    reports: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: reports.append(context))
    return reports


async def test_a_failed_flush_tells_every_waiter_and_on_failure_and_nothing_is_lost() -> None:
    failures: list[BaseException] = []

    async def flush(batch: WriteBatch) -> None:
        await asyncio.sleep(0)
        raise Refused("WPFENCED another actor took this service point over")

    reports = lost_reports()
    try:
        commit = GroupCommit(flush, failures.append)
        waiters = [commit.durable(), commit.durable()]
        for waiter in waiters:
            with pytest.raises(Refused):
                await waiter
        await asyncio.sleep(0.01)
        assert [type(f) for f in failures] == [Refused]
        del commit, waiters
        gc.collect()
        await asyncio.sleep(0)
        assert reports == []  # no "Task exception was never retrieved"
    finally:
        asyncio.get_running_loop().set_exception_handler(None)


async def test_a_cancellation_from_inside_the_flush_is_a_failure() -> None:
    """The store's client cancelled its own call: memory is ahead of Redis, so the actor
    must end, as for any failed flush."""
    failures: list[BaseException] = []

    async def flush(batch: WriteBatch) -> None:
        raise asyncio.CancelledError  # not this task being cancelled

    commit = GroupCommit(flush, failures.append)
    with pytest.raises(asyncio.CancelledError):
        await commit.durable()
    await asyncio.sleep(0.01)
    assert len(failures) == 1 and isinstance(failures[0], asyncio.CancelledError)


async def test_a_cancelled_flusher_cancels_its_waiters_and_is_no_failure() -> None:
    failures: list[BaseException] = []
    started = asyncio.Event()

    async def flush(batch: WriteBatch) -> None:
        started.set()
        await asyncio.sleep(60)

    commit = GroupCommit(flush, failures.append)
    waiter = commit.durable()
    await started.wait()
    flusher = commit._flusher
    assert flusher is not None
    flusher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert failures == []

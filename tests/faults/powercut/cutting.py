"""When to cut the power, and what to do with the work in flight at that moment."""

from __future__ import annotations

import asyncio

# The cut comes at the first acknowledgement after this long: longer than the second
# within which `appendfsync everysec` syncs and PostgreSQL's WAL writer flushes
# (wal_writer_delay, 200 ms), so the negative controls have synced at least once.
CUT_AFTER_S = 1.5


async def until_the_cut(cut: asyncio.Event, workers: list[asyncio.Task[None]]) -> None:
    """Wait for the cut, then abandon what still waits on the dead server: it was never
    acknowledged. A worker that failed before the cut fails the test."""
    waiter = asyncio.create_task(cut.wait())
    done, _ = await asyncio.wait([waiter, *workers], timeout=60, return_when="FIRST_COMPLETED")
    for task in [waiter, *workers]:
        task.cancel()
    await asyncio.gather(waiter, *workers, return_exceptions=True)
    for task in workers:
        if task in done:
            task.result()
    assert cut.is_set(), "the power was never cut within 60 s"

"""The supervisor of a service point's provider drivers forgets the drivers that ended
and cancels the rest when it stops."""

from __future__ import annotations

import asyncio
from typing import Any

from orchestrator.servicepoint.supervisor import DriverSupervisor
from tests.support import eventually


async def _async(value: Any) -> Any:
    return value


async def test_the_supervisor_forgets_ended_drivers_and_cancels_the_rest() -> None:
    supervisor = DriverSupervisor()
    forever = asyncio.Event()

    async def fails() -> None:
        raise RuntimeError("provider adapter bug")

    supervisor.start("A1", "attempt", fails())
    supervisor.start("R1", "refund", forever.wait())  # type: ignore[arg-type]
    await eventually(lambda: _async(len(supervisor)), lambda n: n == 1)
    await supervisor.stop()
    await eventually(lambda: _async(len(supervisor)), lambda n: n == 0)

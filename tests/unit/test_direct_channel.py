"""The direct channel between a front door and a service-point actor (actors/direct.py):
answers matched to their batches however they interleave, a private socket, and every
failure surfacing as LinkBroken so that the caller sends the batch through Ray."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from actors.direct import PREFIX, DirectLink, DirectServer, LinkBroken, sweep_dead
from orchestrator.domain.commands import CancelOrder, Command, Done, Result


def cancel(n: int) -> CancelOrder:
    return CancelOrder(request_id=f"r{n}", order_id=f"O{n}", reason="test")


async def echo_later(commands: Sequence[Command]) -> list[Result]:
    """Answers each batch after a delay that makes later batches overtake earlier ones."""
    first = commands[0]
    assert isinstance(first, CancelOrder)
    await asyncio.sleep(0.05 if first.request_id == "r0" else 0.0)
    return [Done(order=c.order_id.encode()) for c in commands if isinstance(c, CancelOrder)]


async def test_answers_are_matched_to_their_batches() -> None:
    server = DirectServer({"submit": echo_later})
    await server.start()
    link = await DirectLink.open(server.path)
    try:
        batches = [[cancel(n), cancel(n + 100)] for n in range(20)]
        answers = await asyncio.gather(*(link.submit(b) for b in batches))
        for batch, answer in zip(batches, answers, strict=True):
            assert answer == [Done(order=c.order_id.encode()) for c in batch]
    finally:
        await link.close()
        await server.close()


async def test_the_socket_is_private_to_its_user() -> None:
    server = DirectServer({"submit": echo_later})
    await server.start()
    try:
        directory = Path(server.path).parent
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        assert directory.stat().st_uid == os.getuid()
    finally:
        await server.close()
    assert not Path(server.path).parent.exists()


async def test_a_handler_error_is_a_broken_link_for_that_batch_only() -> None:
    async def fails_on_r1(commands: Sequence[Command]) -> list[Result]:
        if any(isinstance(c, CancelOrder) and c.request_id == "r1" for c in commands):
            raise ValueError("boom")
        return [Done(order=b"ok")]

    server = DirectServer({"submit": fails_on_r1})
    await server.start()
    link = await DirectLink.open(server.path)
    try:
        with pytest.raises(LinkBroken, match="boom"):
            await link.submit([cancel(1)])
        assert await link.submit([cancel(2)]) == [Done(order=b"ok")]
    finally:
        await link.close()
        await server.close()


async def test_batches_in_flight_when_the_actor_dies_fail_and_the_link_reports_broken() -> None:
    started = asyncio.Event()

    async def never(commands: Sequence[Command]) -> list[Result]:
        started.set()
        await asyncio.sleep(3600)
        return []

    server = DirectServer({"submit": never})
    await server.start()
    link = await DirectLink.open(server.path)
    in_flight = asyncio.ensure_future(link.submit([cancel(1)]))
    await asyncio.wait_for(started.wait(), 5)
    await server.close()  # the actor's end of every connection closes
    with pytest.raises(LinkBroken):
        await asyncio.wait_for(in_flight, 5)
    assert link.broken
    with pytest.raises(LinkBroken):
        await link.submit([cancel(2)])
    await link.close()


async def test_each_frame_names_its_method() -> None:
    async def observe(notice: str) -> str:
        return f"observed {notice}"

    server = DirectServer({"submit": echo_later, "observe": observe})
    await server.start()
    link = await DirectLink.open(server.path)
    try:
        assert await link.call("observe", "N1") == "observed N1"
        assert await link.submit([cancel(7)]) == [Done(order=b"O7")]
        with pytest.raises(LinkBroken, match="KeyError"):
            await link.call("status", None)  # not served over the channel
    finally:
        await link.close()
        await server.close()


def test_the_socket_directories_of_ended_processes_are_swept(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])  # a process that has ended
    gone.wait()
    dead = tmp_path / f"{PREFIX}{gone.pid}-abc"
    alive = tmp_path / f"{PREFIX}{os.getpid()}-def"
    unnamed = tmp_path / f"{PREFIX}x1y-z"  # made before the pid was in the name: kept
    other = tmp_path / "something-else-1"
    for directory in (dead, alive, unnamed, other):
        directory.mkdir()
        (directory / "commands.sock").touch()
    assert sweep_dead(str(tmp_path)) == [dead.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [alive.name, unnamed.name, other.name]
    )

"""A direct channel from a front door to a service-point actor on the same node.

Ray places, restarts and finds the actors; a command batch sent as a Ray task costs a
few milliseconds of Ray's own machinery at low load. So each actor also listens on a
Unix socket in a directory only its user can enter, and a front door on the same node
sends its batches there. Ray stays the way in for everything else and the fallback for
commands: when the socket is gone (the actor died, or lives on another node) the batch
goes through Ray, which waits for the restarted actor. Every command is idempotent, so
a batch that was in flight on a broken socket is simply sent again through Ray.

A frame is a 4-byte length, an 8-byte sequence number and a pickled payload: the
method's name and argument one way (a command list for `submit`, a provider's
notification for `observe`), its answer (or the error) the other. Both ends run the same
code under the same user, the same trust Ray's own pickled calls rely on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import shutil
import struct
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.domain.commands import Command, Result

log = logging.getLogger(__name__)

HEADER = struct.Struct("!IQ")
MAX_FRAME = 64 * 2**20

Handler = Callable[[Any], Awaitable[Any]]
PREFIX = "windowpay-sp-"


def sweep_dead(temp_dir: str | None = None) -> list[str]:
    """Remove the socket directories of actors whose process has ended without closing
    them (killed, or lost with their node): each directory is named after the pid that
    made it, and is removed only when that pid is gone and the directory is this
    user's. Returns the names removed."""
    root = Path(temp_dir or tempfile.gettempdir())
    removed = []
    for directory in root.glob(f"{PREFIX}*-*"):
        pid_text = directory.name.removeprefix(PREFIX).split("-", 1)[0]
        if not pid_text.isdigit():
            continue  # not one of ours, or named before the pid was in the name
        try:
            if directory.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory.name)
        except (PermissionError, FileNotFoundError):
            continue  # someone else's process, or already gone
    return removed


class DirectServer:
    """The actor's end: one Unix socket, each frame answered by its own task with the
    named handler."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers = dict(handlers)
        sweep_dead()  # what actors killed before this one left behind
        # mode 0700, named after this process, so that a later actor can tell it is left
        self._directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
        self.path = str(self._directory / "commands.sock")
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(
            self._connection, path=self.path, limit=MAX_FRAME
        )

    async def close(self) -> None:
        """Stop listening and drop every connection, as the process's end would."""
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        for writer in self._writers:
            writer.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                sequence, payload = await _read_frame(reader)
                task = asyncio.create_task(self._answer(writer, sequence, payload))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the front door went away
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, sequence: int, payload: bytes) -> None:
        answer: Any
        try:
            method, argument = pickle.loads(payload)
            answer = await self._handlers[method](argument)
        except Exception as error:  # the caller falls back to Ray, which raises it again
            answer = RuntimeError(f"{type(error).__name__}: {error}")
        if not writer.is_closing():
            _write_frame(writer, sequence, answer)


class DirectLink:
    """A front door's end: batches over the socket, answers matched by sequence number.
    `submit` raises LinkBroken when the socket fails; the caller then uses Ray."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._sequence = 0
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._reading = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, path: str, timeout_s: float = 2.0) -> DirectLink:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(path, limit=MAX_FRAME), timeout_s
        )
        return cls(reader, writer)

    @property
    def broken(self) -> bool:
        return self._reading.done()

    async def submit(self, commands: Sequence[Command]) -> list[Result]:
        results: list[Result] = await self.call("submit", list(commands))
        return results

    async def call(self, method: str, argument: Any) -> Any:
        if self.broken:
            raise LinkBroken("the direct channel is closed")
        self._sequence += 1
        sequence = self._sequence
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[sequence] = future
        try:
            _write_frame(self._writer, sequence, (method, argument))
            answer = await future
        finally:
            del self._waiting[sequence]
        if isinstance(answer, Exception):
            raise LinkBroken(str(answer))
        return answer

    async def close(self) -> None:
        self._reading.cancel()
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def _read(self) -> None:
        try:
            while True:
                sequence, payload = await _read_frame(self._reader)
                future = self._waiting.get(sequence)
                if future is not None and not future.done():
                    future.set_result(pickle.loads(payload))
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as error:
            self._fail(LinkBroken(f"the direct channel broke: {error!r}"))
        except asyncio.CancelledError:
            self._fail(LinkBroken("the direct channel was closed"))
            raise

    def _fail(self, error: Exception) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)


class LinkBroken(Exception):
    """The batch may or may not have run; send it again another way (it is idempotent)."""


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    length, sequence = HEADER.unpack(await reader.readexactly(HEADER.size))
    if length > MAX_FRAME:
        raise ConnectionError(f"a frame of {length} bytes is over the limit")
    return sequence, await reader.readexactly(length)


def _write_frame(writer: asyncio.StreamWriter, sequence: int, value: Any) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(HEADER.pack(len(payload), sequence) + payload)

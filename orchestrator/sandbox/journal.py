"""The sandbox ledgers' durable copy: one SQLite file (write-ahead log, every commit
fsync'd) under the data directory, so that a restart of the sandboxes finds every trade,
refund, QR code and pending notification where it was, as a real provider would.

Changes are written by group commit: a ledger notes what changed as it changes (nothing
is written then), and an operation that answers awaits `saved()`, which returns once
everything noted so far is committed. One writer commits whatever has been noted since
its last commit in one transaction, so answers given together share one fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

SANDBOX_DIR = "sandbox"  # the ledgers' directory in `windowpay serve`'s data directory
FILE = "ledger.sqlite3"
LOCK = "ledger.lock"
LOCK_WAIT_S = 15.0  # a sandbox process that is still stopping lets go of the ledger
Key = tuple[str, str, str]  # (ledger, kind, key): a ledger is one provider's bank
Encoder = Callable[[], bytes]

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    ledger TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (ledger, kind, key)
) WITHOUT ROWID
"""


class LedgerBusy(Exception):
    """Another process holds the ledger (a sandbox process serving from it)."""


class LedgerFile:
    """The SQLite file. Its methods block: the journal calls `write` from a thread, so
    each holds the file's lock (a read never lands inside another's write)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / FILE
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # fsync the log at every commit
        self._db.execute(SCHEMA)

    def load(self, ledger: str, kind: str) -> dict[str, bytes]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, body FROM entries WHERE ledger = ? AND kind = ?", (ledger, kind)
            ).fetchall()
        return {key: bytes(body) for key, body in rows}

    def write(self, rows: list[tuple[Key, bytes | None]]) -> None:
        """One transaction: each key's new body, or its removal (None)."""
        puts = [(*key, body) for key, body in rows if body is not None]
        gone = [key for key, body in rows if body is None]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?)", puts)
                self._db.executemany(
                    "DELETE FROM entries WHERE ledger = ? AND kind = ? AND key = ?", gone
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def clear(self, ledger: str) -> int:
        """Forget one ledger entirely; how many entries it had."""
        with self._lock:
            return self._db.execute("DELETE FROM entries WHERE ledger = ?", (ledger,)).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Journal:
    """Group commit of the changes of every ledger in one file. Without a file (tests,
    the in-process sandboxes) nothing is kept and `saved()` returns at once."""

    def __init__(self, file: LedgerFile | None = None) -> None:
        self.file = file
        self._pending: dict[Key, Encoder | None] = {}
        self._noted = 0  # changes noted so far
        self._committed = 0  # of which this many are committed
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.commits = 0  # transactions written (the benchmark reads it)

    def load(self, ledger: str, kind: str) -> dict[str, bytes]:
        return {} if self.file is None else self.file.load(ledger, kind)

    def note(self, key: Key, encode: Encoder | None) -> None:
        """`key` changed: `encode` makes its body when it is written (so the body is the
        latest state then); None removes it."""
        if self.file is None:
            return
        self._pending[key] = encode
        self._noted += 1
        self._start_writer()

    async def saved(self) -> None:
        """Return once every change noted before the call is committed (or raise what
        the write raised: the answer that waits for it is not given)."""
        if self._committed >= self._noted:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((self._noted, done))
        self._start_writer()
        await done

    async def close(self) -> None:
        """Write what is pending, then close the file."""
        if self.file is None:
            return
        with contextlib.suppress(Exception):
            await self.saved()
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        self.file.close()
        self.file = None

    def _start_writer(self) -> None:
        if self._writer is None:
            with contextlib.suppress(RuntimeError):  # no loop yet: the next call starts it
                self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            while self._pending and self.file is not None:
                batch, self._pending = self._pending, {}
                upto = self._noted
                rows = [(key, encode and encode()) for key, encode in batch.items()]
                try:
                    await asyncio.to_thread(self.file.write, rows)
                except Exception as error:
                    log.exception("sandbox ledger write failed")
                    for key, encode in batch.items():  # kept for the next write
                        self._pending.setdefault(key, encode)
                    self._wake(self._noted, error)  # no answer waits on it any more
                    return
                self.commits += 1
                self._committed = upto
                self._wake(upto, None)
        finally:
            self._writer = None

    def _wake(self, upto: int, error: Exception | None) -> None:
        still = []
        for target, done in self._waiting:
            if target > upto:
                still.append((target, done))
            elif done.done():
                continue
            elif error is not None:
                done.set_exception(error)
            else:
                done.set_result(None)
        self._waiting = still


class LedgerLock:
    """An exclusive lock on a ledger directory, held by the one process serving from it
    (and by `windowpay sandbox reset` while it resets)."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / LOCK
        self._file: IO[bytes] | None = None

    def take(self, wait_s: float = LOCK_WAIT_S) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._path.open("ab")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    raise LedgerBusy(f"{self._path.parent} is in use by another process") from None
                time.sleep(0.1)
        handle.truncate(0)
        handle.write(str(os.getpid()).encode())
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

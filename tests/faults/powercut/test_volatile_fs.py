"""The volatile filesystem itself: what a cut loses and keeps. The power-cut tests of
Redis and PostgreSQL mean something only if these hold."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.powercut.disk import VolatileDisk

Mount = Callable[[Path, Path], VolatileDisk]


@pytest.fixture
def disk(power_root: Path, volatile: Mount) -> VolatileDisk:
    return volatile(power_root / "disk", power_root / "mounted")


def write(
    path: Path, data: bytes, *, offset: int | None = None, sync: bool = False, flags: int = 0
) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o644)
    try:
        os.pwrite(fd, data, os.fstat(fd).st_size if offset is None else offset)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def test_an_unsynced_write_is_read_back_until_the_cut_and_lost_by_it(disk: VolatileDisk) -> None:
    path = disk.mountpoint / "f"
    write(path, b"kept", sync=True)
    write(path, b"+lost")
    assert path.read_bytes() == b"kept+lost"
    assert disk.unsynced() == (1, 1)
    assert disk.cut() == (1, 1)
    assert path.read_bytes() == b"kept"
    assert (disk.disk / "f").read_bytes() == b"kept"
    assert disk.unsynced() == (0, 0)


def test_a_clean_unmount_syncs_what_was_kept(disk: VolatileDisk) -> None:
    write(disk.mountpoint / "f", b"kept at unmount")
    disk.unmount()
    assert (disk.disk / "f").read_bytes() == b"kept at unmount"


def test_fdatasync_keeps_what_was_written_before_it(disk: VolatileDisk) -> None:
    path = disk.mountpoint / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b"a" * 5000)
        os.fdatasync(fd)
        os.write(fd, b"b" * 5000)
    finally:
        os.close(fd)
    disk.cut()
    assert path.read_bytes() == b"a" * 5000


def test_an_overwrite_not_synced_gives_the_old_bytes_back(disk: VolatileDisk) -> None:
    path = disk.mountpoint / "f"
    write(path, b"0123456789" * 1000, sync=True)
    write(path, b"XXXX", offset=4094)  # across a page boundary
    assert path.read_bytes()[4090:4100] == b"0123XXXX89"
    disk.cut()
    assert path.read_bytes() == b"0123456789" * 1000


def test_a_truncate_is_undone_by_the_cut_unless_synced(disk: VolatileDisk) -> None:
    path = disk.mountpoint / "f"
    write(path, b"x" * 9000, sync=True)
    os.truncate(path, 10)
    write(path, b"y", offset=20)
    assert path.read_bytes() == b"x" * 10 + b"\0" * 10 + b"y"
    disk.cut()
    assert path.read_bytes() == b"x" * 9000
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, 10)
        os.fsync(fd)
    finally:
        os.close(fd)
    disk.cut()
    assert path.read_bytes() == b"x" * 10


def test_a_handle_opened_o_dsync_keeps_every_write(disk: VolatileDisk) -> None:
    path = disk.mountpoint / "f"
    write(path, b"durable", flags=os.O_DSYNC)
    disk.cut()
    assert path.read_bytes() == b"durable"


def test_a_new_file_renamed_into_place_without_a_sync_is_found_empty(disk: VolatileDisk) -> None:
    """Metadata is on the disk at once, data only once synced (what ext4 may leave)."""
    write(disk.mountpoint / "tmp", b"contents")
    os.rename(disk.mountpoint / "tmp", disk.mountpoint / "final")
    disk.cut()
    assert (disk.mountpoint / "final").read_bytes() == b""
    assert not (disk.mountpoint / "tmp").exists()

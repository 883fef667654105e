"""Volatile disks for the power-cut tests, under a directory the postgres user may enter
(PostgreSQL runs as that user when we are root); unmounted and removed after the test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.powercut.disk import VolatileDisk, fuse_missing


@pytest.fixture
def power_root() -> Iterator[Path]:
    missing = fuse_missing()
    if missing is not None:
        pytest.fail(f"the power-cut tests need FUSE: {missing}")  # never a silent skip
    root = Path(tempfile.mkdtemp(prefix="windowpay-powercut-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def volatile(power_root: Path) -> Iterator[Callable[[Path, Path], VolatileDisk]]:
    """`volatile(disk, mountpoint)` mounts a volatile disk; all are unmounted after the
    test (whose servers must be stopped by then)."""
    disks: list[VolatileDisk] = []

    def mount(disk: Path, mountpoint: Path) -> VolatileDisk:
        volatile_disk = VolatileDisk(disk, mountpoint)
        volatile_disk.mount()
        disks.append(volatile_disk)
        return volatile_disk

    yield mount
    for volatile_disk in disks:
        volatile_disk.unmount()

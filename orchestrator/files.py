"""Files that hold secrets: created with their final mode from the first byte, and never
written over an existing file."""

from __future__ import annotations

import os
from pathlib import Path


def create_file(path: Path, data: bytes, *, mode: int) -> None:
    """Write a new file; FileExistsError if anything is already there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away; never adds any
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def create_secret(path: Path, data: bytes) -> None:
    create_file(path, data, mode=0o600)


def create_new_file(path: Path, data: bytes, *, mode: int) -> None:
    """Write a file that must not exist yet, whole or not at all: FileExistsError if it
    does (nothing is overwritten)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    create_file(temporary, data, mode=mode)
    try:
        os.link(temporary, path)  # fails if the path exists, unlike a rename
    finally:
        temporary.unlink()


def replace_file(path: Path, data: bytes, *, mode: int) -> None:
    """Atomically replace a file (a revocation list, run.json) with a new one made with
    `mode` from its first byte: readers see the old or the new."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    create_file(temporary, data, mode=mode)
    os.replace(temporary, path)

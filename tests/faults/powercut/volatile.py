"""A FUSE filesystem whose unsynced writes live in volatile memory, as Jepsen's LazyFS
does: what a disk with a write cache does when the power goes.

It mirrors a directory (the "disk"). A write to a file does not reach the disk: it is
kept here, in whole pages, and reads see it. `fsync` / `fdatasync` of the file (or a
write through a handle opened O_SYNC / O_DSYNC) puts the file's kept writes on the disk.
The control socket's `drop` forgets every kept write: what the power cut loses. A clean
unmount syncs what is kept, as any filesystem does.

Metadata (create, mkdir, rename, unlink, chmod, chown) goes to the disk at once, as a
journalling filesystem that orders its metadata commits does. A renamed or new file
whose data was never synced is therefore found empty (or short) after a cut.

Run as `python -m tests.faults.powercut.volatile DISK MOUNTPOINT CONTROL_SOCKET`;
tests drive it through disk.py.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import mfusepy

PAGE = 4096
_SYNCED_HANDLE = os.O_SYNC | os.O_DSYNC


@dataclass
class Unsynced:
    """One file's writes since its last sync: whole pages of its new content, its new
    size, and where a truncate not yet synced cut the disk's copy off. `fd` is a
    descriptor of its own on the disk's file, to write it back by."""

    fd: int
    size: int
    cut: int
    pages: dict[int, bytearray] = field(default_factory=dict)

    def page(self, index: int) -> bytearray:
        """The page as the program sees it: kept, else the disk's, cut where truncated."""
        kept = self.pages.get(index)
        if kept is not None:
            return kept
        start = index * PAGE
        page = bytearray(os.pread(self.fd, PAGE, start).ljust(PAGE, b"\0"))
        if self.cut < start + PAGE:
            page[max(self.cut - start, 0) :] = bytes(PAGE - max(self.cut - start, 0))
        return page

    def write_back(self) -> None:
        """Put the kept writes on the disk (what fsync promises), and let go."""
        try:
            if self.cut < os.fstat(self.fd).st_size:
                os.ftruncate(self.fd, self.cut)
            for index, page in sorted(self.pages.items()):
                start = index * PAGE
                if start < self.size:
                    os.pwrite(self.fd, bytes(page[: self.size - start]), start)
            os.ftruncate(self.fd, self.size)
            # No os.fsync: the directory under us is the disk that survives the cut.
        finally:
            os.close(self.fd)


class VolatileFS(mfusepy.Operations):
    use_ns = True

    def __init__(self, disk: str) -> None:
        self.disk = os.path.realpath(disk)
        self._mutex = threading.Lock()
        self.unsynced: dict[int, Unsynced] = {}  # by the file's inode on the disk
        self.synced_handles: set[int] = set()

    def _on_disk(self, path: str) -> str:
        return os.path.join(self.disk, path.lstrip("/"))

    def _owned_by_caller(self, path: str) -> None:
        uid, gid, _ = mfusepy.fuse_get_context()
        os.lchown(path, uid, gid)

    # ---- the cache -------------------------------------------------------------------

    def _entry(self, fd: int) -> Unsynced:
        info = os.fstat(fd)
        entry = self.unsynced.get(info.st_ino)
        if entry is None:
            entry = Unsynced(os.dup(fd), info.st_size, info.st_size)
            self.unsynced[info.st_ino] = entry
        return entry

    def _forget(self, inode: int) -> None:
        entry = self.unsynced.pop(inode, None)
        if entry is not None:
            os.close(entry.fd)

    def _sync(self, fd: int) -> None:
        entry = self.unsynced.pop(os.fstat(fd).st_ino, None)
        if entry is not None:
            entry.write_back()

    def drop(self) -> tuple[int, int]:
        """The power cut: every kept write is gone. Returns (files, pages) lost."""
        with self._mutex:
            lost = self._count()
            for inode in list(self.unsynced):
                self._forget(inode)
            return lost

    def dirty(self) -> tuple[int, int]:
        with self._mutex:
            return self._count()

    def _count(self) -> tuple[int, int]:
        return len(self.unsynced), sum(len(e.pages) for e in self.unsynced.values())

    def destroy(self, path: str) -> None:
        """Unmounted cleanly: like any filesystem, it syncs what it kept (after a cut,
        nothing is left to sync)."""
        with self._mutex:
            while self.unsynced:
                self.unsynced.popitem()[1].write_back()

    # ---- files -----------------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        with self._mutex:
            info = os.fstat(fh) if fh is not None else os.lstat(self._on_disk(path))
            attrs = {
                key: getattr(info, key)
                for key in ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size")
            }
            attrs.update(
                st_atime=info.st_atime_ns, st_mtime=info.st_mtime_ns, st_ctime=info.st_ctime_ns
            )
            entry = self.unsynced.get(info.st_ino)
            if entry is not None and stat.S_ISREG(info.st_mode):
                attrs["st_size"] = entry.size
            attrs["st_blocks"] = (attrs["st_size"] + 511) // 512
            return attrs

    def open(self, path: str, flags: int) -> int:
        with self._mutex:
            # Always read-write underneath: a partly written page is read to be completed.
            fd = os.open(self._on_disk(path), os.O_RDWR)
            if flags & _SYNCED_HANDLE:
                self.synced_handles.add(fd)
            if flags & os.O_TRUNC:
                self._truncate(fd, 0)
            return fd

    def create(self, path: str, mode: int, flags: int) -> int:
        with self._mutex:
            target = self._on_disk(path)
            fd = os.open(target, os.O_RDWR | os.O_CREAT, stat.S_IMODE(mode))
            self._owned_by_caller(target)
            self._forget(os.fstat(fd).st_ino)  # an inode number used before
            if flags & _SYNCED_HANDLE:
                self.synced_handles.add(fd)
            return fd

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        with self._mutex:
            entry = self.unsynced.get(os.fstat(fh).st_ino)
            if entry is None:
                return os.pread(fh, size, offset)
            end = min(offset + size, entry.size)
            if end <= offset:
                return b""
            pages = range(offset // PAGE, (end - 1) // PAGE + 1)
            data = b"".join(entry.page(i) for i in pages)
            start = offset - pages[0] * PAGE
            return data[start : start + end - offset]

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self._mutex:
            entry = self._entry(fh)
            for index, chunk_start, chunk in _chunks(offset, data):
                page = entry.page(index)
                page[chunk_start : chunk_start + len(chunk)] = chunk
                entry.pages[index] = page
            entry.size = max(entry.size, offset + len(data))
            if fh in self.synced_handles:
                self._sync(fh)
            return len(data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        with self._mutex:
            if fh is not None:
                self._truncate(fh, length)
                return 0
            fd = os.open(self._on_disk(path), os.O_RDWR)
            try:
                self._truncate(fd, length)
            finally:
                os.close(fd)
            return 0

    def _truncate(self, fd: int, length: int) -> None:
        entry = self._entry(fd)
        entry.cut = min(entry.cut, length)
        entry.size = length
        for index in [i for i in entry.pages if i * PAGE >= length]:
            del entry.pages[index]
        tail = entry.pages.get(length // PAGE)
        if tail is not None:
            tail[length % PAGE :] = bytes(PAGE - length % PAGE)

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        with self._mutex:
            self._sync(fh)
            return 0

    def release(self, path: str, fh: int) -> int:
        with self._mutex:
            self.synced_handles.discard(fh)
            if os.fstat(fh).st_nlink == 0:  # deleted: nothing of it can be synced any more
                self._forget(os.fstat(fh).st_ino)
            os.close(fh)
            return 0

    # ---- metadata: on the disk at once ---------------------------------------------------

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        return 0

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._on_disk(path))]

    def mkdir(self, path: str, mode: int) -> int:
        target = self._on_disk(path)
        os.mkdir(target, mode)
        self._owned_by_caller(target)
        return 0

    def rmdir(self, path: str) -> int:
        os.rmdir(self._on_disk(path))
        return 0

    def unlink(self, path: str) -> int:
        with self._mutex:
            target = self._on_disk(path)
            info = os.lstat(target)
            os.unlink(target)
            if info.st_nlink == 1:
                self._forget(info.st_ino)
            return 0

    def rename(self, old: str, new: str) -> int:
        with self._mutex:
            target = self._on_disk(new)
            try:
                replaced = os.lstat(target)
            except FileNotFoundError:
                replaced = None
            os.rename(self._on_disk(old), target)
            if replaced is not None and replaced.st_nlink == 1:
                self._forget(replaced.st_ino)
            return 0

    def symlink(self, target: str, source: str) -> int:
        os.symlink(source, self._on_disk(target))
        return 0

    def readlink(self, path: str) -> str:
        return os.readlink(self._on_disk(path))

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._on_disk(path), mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        os.lchown(self._on_disk(path), uid, gid)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        os.utime(self._on_disk(path), ns=times, follow_symlinks=False)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        info = os.statvfs(self._on_disk(path))
        return {
            key: getattr(info, key)
            for key in (
                "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                "f_ffree", "f_favail", "f_flag", "f_namemax",
            )
        }  # fmt: skip


def _chunks(offset: int, data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(page index, offset in the page, bytes) for each page a write touches."""
    done = 0
    while done < len(data):
        index, start = divmod(offset + done, PAGE)
        chunk = data[done : done + PAGE - start]
        yield index, start, chunk
        done += len(chunk)


def serve_control(fs: VolatileFS, path: str) -> None:
    """One command per connection: `drop` (the cut) or `dirty`; the answer is
    `<files> <pages>`, lost or kept unsynced."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    while True:
        conn, _ = server.accept()
        with conn:
            command = conn.recv(64).decode().strip()
            if command == "drop":
                answer = fs.drop()
            elif command == "dirty":
                answer = fs.dirty()
            else:
                conn.sendall(f"error unknown command {command!r}\n".encode())
                continue
            conn.sendall(f"{answer[0]} {answer[1]}\n".encode())


def main(disk: str, mountpoint: str, control: str) -> None:
    os.umask(0)  # the kernel applied the caller's umask already
    fs = VolatileFS(disk)
    threading.Thread(target=serve_control, args=(fs, control), daemon=True).start()
    # Time-outs of 0: after a cut, the kernel must not answer from what it remembers.
    mfusepy.FUSE(
        fs,
        mountpoint,
        foreground=True,
        allow_other=True,
        default_permissions=True,
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
        fsname="volatile",
    )


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: volatile.py DISK MOUNTPOINT CONTROL_SOCKET")
    try:
        main(*sys.argv[1:])
    except OSError as error:
        sys.exit(f"volatile: {error} ({errno.errorcode.get(error.errno or 0, '?')})")

"""A directory on the volatile filesystem (volatile.py), and the power cut of it.

`mount()` serves `disk` (what survives) at `mountpoint` (what the servers use) from a
child process; `cut()` drops every write not yet synced, then mounts it afresh, so that
the kernel keeps nothing from before either. The servers using it must be dead first.
`unmount()` alone is a clean shutdown: the filesystem syncs what it kept.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def fuse_missing() -> str | None:
    """Why a volatile disk cannot be mounted here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing: `make fuse` installs Debian's fuse3"
    return None


class VolatileDisk:
    """`disk` (kept as it is) served at `mountpoint`; the control socket and the
    filesystem's log sit beside the disk."""

    def __init__(self, disk: Path, mountpoint: Path) -> None:
        self.disk = disk
        self.mountpoint = mountpoint
        self._control = disk.with_name(disk.name + ".control")
        self._log = disk.with_name(disk.name + ".log")
        self._process: subprocess.Popen[bytes] | None = None
        self.disk.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)

    def mount(self, timeout: float = 120.0) -> None:
        # A deadline, not a wait: the filesystem is a Python process, which takes long to
        # start on a loaded machine (the suite's other workers share its two cores).
        self._control.unlink(missing_ok=True)
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.powercut.volatile",
                 str(self.disk), str(self.mountpoint), str(self._control)],
                cwd=REPO, stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not (os.path.ismount(self.mountpoint) and self._control.exists()):
            if self._process.poll() is not None:
                raise RuntimeError(f"the volatile filesystem did not mount: see {self._log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the volatile filesystem not mounted within {timeout} s")
            time.sleep(0.05)

    def unsynced(self) -> tuple[int, int]:
        """(files, pages) written and not yet synced."""
        return self._ask("dirty")

    def cut(self) -> tuple[int, int]:
        """The power cut: the unsynced writes are lost, (files, pages) of them."""
        lost = self._ask("drop")
        self.unmount()
        self.mount()
        return lost

    def unmount(self) -> None:
        if self._process is None:
            return
        deadline = time.monotonic() + 15
        while os.path.ismount(self.mountpoint):
            done = subprocess.run(
                ["fusermount3", "-u", str(self.mountpoint)], capture_output=True, check=False
            )
            if done.returncode == 0:
                break
            if time.monotonic() > deadline:  # still busy: detach it, the test fails anyway
                subprocess.run(["fusermount3", "-uz", str(self.mountpoint)], check=False)
                break
            time.sleep(0.1)
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _ask(self, command: str) -> tuple[int, int]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(10)
            conn.connect(str(self._control))
            conn.sendall(command.encode() + b"\n")
            answer = conn.recv(128).decode().split()
        if len(answer) != 2 or not all(part.isdigit() for part in answer):
            raise RuntimeError(f"the volatile filesystem answered {answer!r} to {command!r}")
        return int(answer[0]), int(answer[1])

"""A real `windowpay serve` in a child process, and the one way tests connect to it.

The fault tier kills processes on purpose, so the service runs as a subprocess with its
own data dir, a fixed free gRPC port (a restarted process listens where the old one did,
as it would behind a supervisor) and an external Redis the test controls. Its sandbox
gateways are started by the test (in the test's process), so that their ledgers outlive
every restart of the service, as a real provider's would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import grpc
import psutil

from orchestrator.access import client
from orchestrator.healthcheck import status as health_status
from orchestrator.runfile import RunInfo

WINDOWPAY = str(Path(sys.executable).parent / "windowpay")


def connect(data_dir: Path, principal: str, target: str | None = None) -> grpc.aio.Channel:
    """A new mutual-TLS connection, as `principal`, to the deployment serving from
    `data_dir` (its run.json names the address and the development PKI), or to another
    of its front doors at `target`.

    Every fault test reaches the service through this function only."""
    if target is None:
        run = RunInfo.read(data_dir)
        if run is None:
            raise AssertionError(f"no run.json in {data_dir}: is windowpay serving?")
        target = run.grpc
    return identity(data_dir, principal).channel(target)


def identity(data_dir: Path, principal: str) -> client.Identity:
    """`principal`'s certificate in the development PKI that serve made in `data_dir`
    (read from there, not through run.json, which a restarting serve rewrites)."""
    return client.of_pki(data_dir / "pki", principal)


class Served:
    """One `windowpay serve` process at a time, restartable on the same port."""

    def __init__(
        self, config: Path, redis_url: str, database_url: str, data_dir: Path, port: int
    ) -> None:
        self.config = config
        self.redis_url = redis_url
        self.database_url = database_url
        self.data_dir = data_dir
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.failed_starts = 0  # starts that exited before serving (Ray start timeouts)
        self.started_at = 0.0
        self.env: dict[str, str] = {}  # added to this process's environment at each start
        self.args: list[str] = []  # added to the command line at each start

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"serve-{self.starts}.log"

    def start(self) -> None:
        (self.data_dir / "run.json").unlink(missing_ok=True)
        self.starts += 1
        self.started_at = time.time()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
        env.update(self.env)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    WINDOWPAY, "serve",
                    "--config", str(self.config),
                    "--redis-url", self.redis_url,
                    "--database-url", self.database_url,
                    "--data-dir", str(self.data_dir),
                    "--port", str(self.port),
                    "--metrics-port", "0",
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )  # fmt: skip

    async def wait_serving(self, within: float = 300.0) -> float:
        """Seconds until run.json names this process and its health answers SERVING."""
        started = time.monotonic()
        while True:
            if self.process is None or self.process.poll() is not None:
                raise AssertionError(f"windowpay serve exited; see {self.log_path}")
            run = RunInfo.read(self.data_dir)
            if run is not None and run.pid == self.process.pid:
                answer = await asyncio.to_thread(self.health)
                if answer == "SERVING":
                    return time.monotonic() - started
            if time.monotonic() - started > within:
                raise AssertionError(f"not SERVING within {within} s; see {self.log_path}")
            await asyncio.sleep(0.2)

    async def supervised_start(self, tries: int = 5) -> float:
        """Start and wait for SERVING, starting again if the process exits on the way
        (as a supervisor's restart policy would: on a loaded machine Ray can time out
        at start). Seconds until SERVING."""
        started = time.monotonic()
        for attempt in range(1, tries + 1):
            self.stop()
            self.start()
            try:
                await self.wait_serving()
                return time.monotonic() - started
            except AssertionError:
                if attempt == tries or (self.process and self.process.poll() is None):
                    raise
                self.failed_starts += 1
        raise AssertionError("unreachable")

    def startup_profile(self) -> dict[str, float]:
        """Seconds from this start of the process to each step of its start, from its log
        (where a restart spends its time)."""
        steps = {
            "Ray ready": "ray_ready_s",
            "service-point actors ready": "actors_ready_s",
            "gRPC front door listening": "front_door_s",
        }
        profile: dict[str, float] = {}
        for line in self.log_path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            for needle, name in steps.items():
                if needle in entry.get("message", "") and name not in profile:
                    at = datetime.strptime(entry["time"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    profile[name] = round(at - self.started_at, 1)
        return profile

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds (user + system) spent so far by this process tree, by role."""
        roles: dict[str, float] = {}
        assert self.process is not None
        for process in [psutil.Process(self.process.pid), *self.descendants()]:
            try:
                name, line = process.name(), " ".join(process.cmdline())
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            if process.pid == self.process.pid:
                role = "serve (front door, Ray driver)"
            elif "ServicePointActor" in line:
                role = "service-point actors"
            elif line.startswith("ray::"):
                role = "other Ray workers"
            elif "agent" in line:
                role = "Ray agents"
            elif "orchestrator.sandbox" in line:
                role = "sandboxes"
            else:
                role = name
            roles[role] = round(roles.get(role, 0.0) + times.user + times.system, 1)
        return dict(sorted(roles.items(), key=lambda item: -item[1]))

    def health(self) -> str:
        return health_status(
            f"127.0.0.1:{self.port}", identity(self.data_dir, "monitor"), timeout_s=2
        )

    def descendants(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def daemons(self, name: str) -> list[psutil.Process]:
        """This deployment's processes called `name` (e.g. raylet, gcs_server)."""
        found = []
        for process in self.descendants():
            try:
                if process.name() == name:
                    found.append(process)
            except psutil.NoSuchProcess:
                pass
        return found

    def actor_pids(self) -> list[int]:
        """The service-point actors' worker processes (Ray names them after the class)."""
        pids = []
        for process in self.descendants():
            try:
                if "ServicePointActor" in " ".join(process.cmdline()):
                    pids.append(process.pid)
            except psutil.NoSuchProcess:
                pass
        return pids

    def kill(self) -> None:
        """SIGKILL the serving process (front door and Ray driver) and wait for it. The Ray
        daemons it started share its fate; anything left of its tree is killed too."""
        if self.process is None:
            return
        tree = self.descendants()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._reap(tree)

    async def wait_exit(self, within: float) -> int:
        """The exit status, once the process exits by itself (fails after `within` s)."""
        assert self.process is not None
        deadline = time.monotonic() + within
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"windowpay serve still running after {within} s")
            await asyncio.sleep(0.1)
        return self.process.returncode

    def stop(self) -> None:
        """SIGTERM and wait (the clean stop), then make sure nothing of it is left."""
        if self.process is None:
            return
        tree = self.descendants()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reap(tree)
        self.process = None

    @staticmethod
    def _reap(tree: list[psutil.Process]) -> None:
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(tree, timeout=10)

"""A private redis-server with append-only persistence, for `make run` (when no
REDIS_URL is set) and for tests that crash Redis on purpose. Loopback, free port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    def __init__(
        self, data_dir: Path, port: int | None = None, maxmemory_mb: int | None = None
    ) -> None:
        self.data_dir = data_dir
        self.maxmemory_mb = maxmemory_mb
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server not found: install the redis-server package or set REDIS_URL"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A full Redis refuses writes rather than evict live state (the drainer's
        # windowpay_redis_used_memory_bytes alerts well before).
        limit = (
            ["--maxmemory", f"{self.maxmemory_mb}mb", "--maxmemory-policy", "noeviction"]
            if self.maxmemory_mb
            else []
        )
        self._process = subprocess.Popen(
            [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.data_dir.resolve()),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--logfile", "redis.log",
                "--daemonize", "no",
                *limit,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited at start; see {self.data_dir / 'redis.log'}"
                    )
                try:
                    if client.ping():
                        # Replaying a large append-only file answers LOADING until done.
                        return self.url
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.exceptions.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer on port {self.port}")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop cleanly: Redis flushes its append-only file."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def crash(self) -> None:
        """SIGKILL, as a power cut of the Redis process would (tests)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

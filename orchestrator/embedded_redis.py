"""A private redis-server with append-only persistence, for `make run` (when no
REDIS_URL is set) and for tests that crash Redis on purpose. Loopback, free port, a
generated password, and a data directory only its owner can enter: another local user
can neither talk to it nor read its append-only file."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from orchestrator.files import create_secret, replace_file


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


APPENDFSYNC = ("always", "everysec")


class EmbeddedRedis:
    """`appendfsync always` (the default) makes every acknowledged write durable on disk
    before Redis answers: the actors' group commit turns many changes into one write,
    so it costs little (docs/PERFORMANCE.md). `everysec` may lose the last second.
    With `maxmemory_mb`, a full Redis refuses writes rather than evict live state."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        appendfsync: str = "always",
        maxmemory_mb: int | None = None,
    ) -> None:
        if appendfsync not in APPENDFSYNC:
            raise ValueError(f"appendfsync must be one of {APPENDFSYNC}, got {appendfsync!r}")
        self.data_dir = data_dir
        self.appendfsync = appendfsync
        self.maxmemory_mb = maxmemory_mb
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def password(self) -> str:
        """Made on first use and kept (0600) beside the data: a restart keeps it."""
        path = self.data_dir / "password"
        if not path.exists():
            create_secret(path, (secrets.token_urlsafe(24) + "\n").encode())
        return path.read_text().strip()

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def _private_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)

    def _config_file(self) -> Path:
        """The password goes in a 0600 file, never on the command line (which every
        local user can read in /proc)."""
        path = self.data_dir / "redis.conf"
        replace_file(path, f"requirepass {self.password}\n".encode(), mode=0o600)
        return path

    def start(self, timeout: float = 15.0) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server not found: install the redis-server package or set REDIS_URL"
            )
        self._private_dir()
        config = self._config_file()
        # A full Redis refuses writes rather than evict live state (the drainer's
        # windowpay_redis_used_memory_bytes alerts well before).
        limit = (
            ["--maxmemory", f"{self.maxmemory_mb}mb", "--maxmemory-policy", "noeviction"]
            if self.maxmemory_mb
            else []
        )
        self._process = subprocess.Popen(
            [
                binary, str(config.resolve()),
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.data_dir.resolve()),
                "--appendonly", "yes",
                "--appendfsync", self.appendfsync,
                "--save", "",
                "--logfile", "redis.log",
                "--daemonize", "no",
                *limit,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            umask=0o077,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_timeout=1)
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

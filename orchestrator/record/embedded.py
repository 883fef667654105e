"""A private PostgreSQL cluster for `make run` (when no DATABASE_URL is set) and for
tests: Debian's binaries, `initdb` into a directory of ours, a free loopback port and a
generated password. Its Unix socket lies in a directory only the cluster's user may
enter (0700, socket 0700) and asks for the password too, so another local user can
neither connect without it nor read the data files (0700)."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import IO

import psycopg

from orchestrator.embedded_redis import free_port
from orchestrator.files import create_secret

USER = "windowpay"
DATABASE = "windowpay"


def find_binaries() -> Path:
    """PG_BIN, else the newest /usr/lib/postgresql/<version>/bin, else the PATH."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])

    def version(initdb: str) -> int:
        name = Path(initdb).parent.parent.name
        return int(name) if name.isdigit() else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError(
            "PostgreSQL binaries not found: install the postgresql package or set DATABASE_URL"
        )
    return Path(initdb).parent


class EmbeddedPostgres:
    """`start` initialises the cluster on first use and returns a connection URL."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root.resolve()
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._bin = find_binaries()
        # PostgreSQL refuses to run as root: then it runs as Debian's postgres user.
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]

    @property
    def password(self) -> str:
        return (self.root / "password").read_text().strip()

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        self._check_reachable()
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        self.sockets.mkdir(mode=0o700, exist_ok=True)
        self.sockets.chmod(0o700)
        self._own(self.sockets)
        log_fd = os.open(self.root / "postgres.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(log_fd, 0o600)
        with os.fdopen(log_fd, "ab") as log:
            self._process = self._postgres(log)
        self._wait(timeout)
        self._ensure_database()
        return self.url()

    def _postgres(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                *self._as, str(self._bin / "postgres"),
                "-D", str(self.data),
                "-p", str(self.port),
                "-k", str(self.sockets),
                "-c", "unix_socket_permissions=0700",
                "-c", "listen_addresses=127.0.0.1",
                "-c", "max_connections=200",
                "-c", "shared_buffers=64MB",
                "-c", "logging_collector=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            umask=0o077,
        )  # fmt: skip

    def stop(self) -> None:
        """A fast shutdown: sessions are ended, committed work is kept."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # names come from our own tests
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _initdb(self) -> None:
        if self.data.exists():
            shutil.rmtree(self.data)  # a half-made cluster from an interrupted start
        self.data.mkdir(parents=True)
        password = self.root / "password"
        if not password.exists():
            create_secret(password, (secrets.token_urlsafe(24) + "\n").encode())
        pwfile = self.root / "pwfile.tmp"
        pwfile.unlink(missing_ok=True)
        create_secret(pwfile, (self.password + "\n").encode())
        self._own(self.data, pwfile)
        try:
            subprocess.run(
                [
                    *self._as, str(self._bin / "initdb"),
                    "-D", str(self.data),
                    "-U", USER,
                    "--pwfile", str(pwfile),
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "-E", "UTF8",
                    "--locale=C",
                    "--no-instructions",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                umask=0o077,
            )  # fmt: skip
        except subprocess.CalledProcessError as error:
            raise RuntimeError(f"initdb failed: {error.stderr.decode(errors='replace')}") from None
        finally:
            pwfile.unlink(missing_ok=True)

    def _check_reachable(self) -> None:
        """As root, the cluster runs as the postgres user, who must be able to enter every
        folder above it: say which one it cannot, rather than let initdb fail obscurely."""
        if not self._as:
            return
        for folder in self.root.parents:
            if not folder.stat().st_mode & stat.S_IXOTH:
                raise RuntimeError(
                    f"the embedded PostgreSQL runs as the postgres user (windowpay runs as "
                    f"root) and cannot enter {folder}: make it searchable (chmod o+x) or set "
                    "DATABASE_URL to a PostgreSQL of your own"
                )

    def _own(self, *paths: Path) -> None:
        if self._as:
            for path in paths:
                shutil.chown(path, "postgres", "postgres")
        # As root the postgres user must pass through the root (search, not list).
        self.root.chmod(0o711 if self._as else 0o700)

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited at start; see {self.root / 'postgres.log'}")
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not answer on port {self.port}") from None
                time.sleep(0.1)

    def _ensure_database(self) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if exists is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

"""The embedded Redis and PostgreSQL refuse another local user: tried as `nobody` from a
child process (so only when the tests run as root), connecting without the secret and
reading the data files are both refused."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.embedded_redis import EmbeddedRedis
from orchestrator.record.embedded import EmbeddedPostgres

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="trying the stores as another local user needs root (to become `nobody`)",
)

# Run as `nobody` (the libraries are imported before the switch, from root's
# interpreter): each probe prints "refused" or what it got.
PROBE = r"""
import json, os, sys
import psycopg, redis
def warm_up(probe):  # load what the clients import lazily, while we may still read it
    try:
        probe()
    except Exception:
        pass
warm_up(lambda: redis.Redis(port=1).ping())
warm_up(lambda: psycopg.connect(host="127.0.0.1", port=1, connect_timeout=1))
os.setgroups([]); os.setgid(65534); os.setuid(65534)
kind, target = sys.argv[1], json.loads(sys.argv[2])
def refused(probe):
    try:
        got = probe()
    except Exception as error:
        return "refused: " + type(error).__name__
    return "GOT " + repr(got)[:200]
if kind == "redis":
    print(refused(lambda: redis.Redis(port=target["port"], socket_timeout=3).ping()))
elif kind == "postgres":
    print(refused(lambda: psycopg.connect(
        host=target["host"], port=target["port"], user="windowpay", dbname="windowpay",
        connect_timeout=3).execute("select 1").fetchone()))
    print(refused(lambda: psycopg.connect(
        host="127.0.0.1", port=target["port"], user="windowpay", dbname="windowpay",
        connect_timeout=3).execute("select 1").fetchone()))
for path in target["files"]:
    print(refused(lambda: open(path, "rb").read(16)))
"""


def as_nobody(kind: str, target: dict[str, object]) -> list[str]:
    assert pwd.getpwuid(65534).pw_name == "nobody"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, kind, json.dumps(target)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=True,
    )
    return done.stdout.split("\n")[:-1]


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may enter, like a deployment's working directory."""
    root = Path(tempfile.mkdtemp(prefix="windowpay-open-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_another_local_user_cannot_use_or_read_the_embedded_redis(open_dir: Path) -> None:
    server = EmbeddedRedis(open_dir / "redis")
    server.start()
    try:
        aof = sorted(str(p) for p in (open_dir / "redis").rglob("*.aof"))
        assert aof, "the append-only file should exist"
        files = [*aof, str(open_dir / "redis" / "password")]
        answers = as_nobody("redis", {"port": server.port, "files": files})
    finally:
        server.stop()
    assert answers[0] == "refused: AuthenticationError", answers
    assert all(a.startswith("refused: PermissionError") for a in answers[1:]), answers


def test_another_local_user_cannot_use_or_read_the_embedded_postgres(open_dir: Path) -> None:
    server = EmbeddedPostgres(open_dir / "pg")
    server.start()
    try:
        target = {
            "host": str(server.sockets),
            "port": server.port,
            "files": [str(server.data / "PG_VERSION"), str(open_dir / "pg" / "password")],
        }
        answers = as_nobody("postgres", target)
    finally:
        server.stop()
    assert all(a.startswith("refused") for a in answers), answers
    assert server.sockets.stat().st_mode & 0o777 == 0o700

"""A real Redis Cluster for tests: Debian's redis-server in cluster mode, 3 masters with
a replica each, on free loopback ports in a directory of its own, `appendonly yes` and
`appendfsync always` as windowpay's own Redis. It stops only the processes it started,
by their pid; the machine's shared Redis is never touched.

`cluster-node-timeout` is small (1 s by default) so that a master killed with SIGKILL is
replaced by its replica within a few seconds (automatic failover: `CLUSTER FAILOVER`
needs the master alive)."""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from orchestrator.files import create_secret

MASTERS = 3


def _free_port_pair() -> int:
    """A port p free, with the cluster bus port p + 10000 free too."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port > 55000:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of ports for a cluster node")


@dataclass
class Node:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class RedisCluster:
    root: Path
    node_timeout_ms: int = 1000
    nodes: list[Node] = field(default_factory=list)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    @property
    def url(self) -> str:
        """The URL windowpay takes for a cluster (orchestrator/store/connect.py), seeded
        with a node that is alive."""
        seed = next(n for n in self.nodes if n.alive())
        return f"redis+cluster://:{self.password}@127.0.0.1:{seed.port}/0"

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, password=self.password, socket_timeout=2)

    def start(self, timeout: float = 30.0) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: install the redis-server package")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        for _ in range(MASTERS * 2):
            port = _free_port_pair()
            node = Node(port, self.root / str(port))
            node.directory.mkdir()
            conf = node.directory / "redis.conf"
            create_secret(conf, f"requirepass {self.password}\nmasterauth {self.password}\n"
                          .encode())  # fmt: skip
            node.process = subprocess.Popen(
                [
                    binary, str(conf),
                    "--bind", "127.0.0.1",
                    "--port", str(port),
                    "--dir", str(node.directory),
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    # A replica takes over however long its link has been down: with
                    # WAIT, what was acknowledged is on it whatever its age.
                    "--cluster-replica-validity-factor", "0",
                    "--appendonly", "yes",
                    "--appendfsync", "always",
                    "--save", "",
                    "--logfile", "redis.log",
                    "--daemonize", "no",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                umask=0o077,
            )  # fmt: skip
            self.nodes.append(node)
        for node in self.nodes:
            self._wait(lambda n=node: self._answers(n.port), timeout, f"node {node.port}")
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "1",
             "--cluster-yes"],
            env={"REDISCLI_AUTH": self.password, "PATH": "/usr/bin:/bin"},
            check=True,
            capture_output=True,
            timeout=timeout,
        )  # fmt: skip
        self.wait_ok(timeout)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says `cluster_state:ok`, 3 live masters serve all slots
        (after a master is killed: once its replica has taken its slots over) and every
        live replica's link to its master is up."""
        self._wait(self._all_ok, timeout, "cluster_state:ok on every node")
        self._wait(self._replicas_linked, timeout, "replica linked to its master")

    def masters(self) -> list[Node]:
        """The live nodes that serve slots now, as the cluster says."""
        live = next(n for n in self.nodes if n.alive())
        shards = self.client(live.port).execute_command("CLUSTER", "SLOTS")
        ports = {int(shard[2][1]) for shard in shards}
        return [n for n in self.nodes if n.port in ports]

    def node_of_key(self, key: str) -> Node:
        live = next(n for n in self.nodes if n.alive())
        with self.client(live.port) as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for shard in client.execute_command("CLUSTER", "SLOTS"):
                if int(shard[0]) <= slot <= int(shard[1]):
                    port = int(shard[2][1])
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(key)

    def replica_of(self, master: Node) -> Node:
        with self.client(master.port) as client:
            info = client.info("replication")
        port = int(info["slave0"]["port"])
        return next(n for n in self.nodes if n.port == port)

    def kill(self, node: Node) -> None:
        """SIGKILL, as a lost host would: no shutdown, no last fsync beyond `always`."""
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)
        node.process.wait()

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive():
                assert node.process is not None
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()

    def _answers(self, port: int) -> bool:
        try:
            with self.client(port) as client:
                return bool(client.ping())
        except redis.exceptions.ConnectionError:
            return False

    def _all_ok(self) -> bool:
        live = [n for n in self.nodes if n.alive()]
        try:
            for node in live:
                with self.client(node.port) as client:
                    info = client.execute_command("CLUSTER", "INFO").decode()
                    if "cluster_state:ok" not in info:
                        return False
            masters = self.masters()
            return len(masters) == MASTERS and all(n.alive() for n in masters)
        except redis.exceptions.RedisError:
            return False

    def _replicas_linked(self) -> bool:
        try:
            for node in self.nodes:
                if node.alive():
                    with self.client(node.port) as client:
                        info = client.info("replication")
                    if info["role"] == "slave" and info["master_link_status"] != "up":
                        return False
            return True
        except redis.exceptions.RedisError:
            return False

    def _wait(self, probe: object, timeout: float, what: str) -> None:
        assert callable(probe)
        deadline = time.monotonic() + timeout
        while not probe():
            for node in self.nodes:
                if node.process is not None and node.process.poll() not in (None, -9):
                    raise RuntimeError(f"redis-server {node.port} exited; see its redis.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis Cluster: no {what} after {timeout} s")
            time.sleep(0.05)

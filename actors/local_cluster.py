"""A Ray cluster of several nodes on this one machine, to try windowpay's cluster mode.

`windowpay serve --local-cluster N` (what `make cluster` runs) starts a head node and
N - 1 worker nodes with Ray's own multi-node facility (`ray.cluster_utils.Cluster`:
each node its own raylet and object store, on loopback), then serves on them with the
service-point actors spread over the nodes. Killing a worker node's raylet (its pid is
logged) shows a lost host: its actors restart on the nodes left, the other windows go
on (docs/SCALING.md). On real hosts the nodes are `ray start` on each machine and
`windowpay serve --ray-address` on the head; nothing else changes.

The head notices a lost node faster than Ray's default (about 5 s instead of about
14 s): health checks every second, five missed in a row. Each node is given 4 logical
CPUs whatever the machine has (the actors ask for none; Ray's own tasks may use them)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from ray.cluster_utils import Cluster

log = logging.getLogger(__name__)

HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 1000,
    "health_check_period_ms": 1000,
    "health_check_timeout_ms": 1000,
    "health_check_failure_threshold": 5,
}
NODE: dict[str, Any] = {
    "num_cpus": 4,  # logical: the number of worker processes a node starts at once
    "node_ip_address": "127.0.0.1",
    "include_dashboard": False,
    "object_store_memory": 100 * 1024 * 1024,  # windowpay passes small objects only
}


@dataclass
class LocalCluster:
    cluster: Any
    temp_dir: str
    workers: list[Any] = field(default_factory=list)  # ray._private.node.Node

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def raylet_pid(self, node: Any) -> int:
        return int(node.all_processes["raylet"][0].process.pid)

    def kill(self, node: Any) -> None:
        """A worker node's raylet, object store and the other daemons Ray started for it
        SIGKILLed at once; its actor processes exit by themselves once they see their
        raylet gone. Close to a lost host (a host cut off by the network would leave
        them running)."""
        self.cluster.remove_node(node, allow_graceful=False)
        self.workers.remove(node)

    def shutdown(self) -> None:
        self.cluster.shutdown()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start(nodes: int = 2) -> LocalCluster:
    """A head node and `nodes - 1` workers, each node also holding the custom resource
    `windowpay-node-<n>` (1 for the head), for placement by resource."""
    if nodes < 1:
        raise ValueError("a cluster has at least one node")
    # Ray's temp dir of its own: the head writes its address into a file there, which a
    # `ray.init()` without an address anywhere on the machine would otherwise join.
    temp_dir = tempfile.mkdtemp(prefix="windowpay-ray-")
    os.environ["RAY_TMPDIR"] = temp_dir
    # Ray's nodes put in SIGTERM and SIGINT handlers of their own that end the process at
    # once; the caller's (windowpay serve's clean stop) are put back once they run.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _start(nodes, temp_dir)
    finally:
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)


def _start(nodes: int, temp_dir: str) -> LocalCluster:
    cluster: Any = Cluster(
        initialize_head=True,
        head_node_args={
            **NODE,
            "resources": {"windowpay-node-1": 1},
            "_system_config": HEALTH_CHECKS,
        },
    )
    local = LocalCluster(cluster, temp_dir)
    try:
        for n in range(2, nodes + 1):
            local.workers.append(cluster.add_node(**NODE, resources={f"windowpay-node-{n}": 1}))
        cluster.wait_for_nodes()
    except BaseException:
        local.shutdown()
        raise
    for n, node in enumerate(local.workers, start=2):
        log.info(
            "Ray worker node %d: id %s, raylet pid %d", n, node.node_id, local.raylet_pid(node)
        )
    return local

"""A Ray cluster of two nodes on this machine (actors/local_cluster.py, Ray's own
multi-node facility), held by a child process of the test: the pytest process never
starts Ray (the e2e tier has its own). It prints one JSON line with the cluster's
address and the worker node's id, then obeys lines on stdin:

* `where`: prints `{"actors": {name: node id}}` for every live named actor (from the
  cluster's GCS; there is no dashboard);
* `kill`: the worker node's processes are killed (SIGKILL, no graceful stop), as when a
  host is lost; prints `{"killed": <time.time()>}`;
* end of input: the whole cluster is shut down, and the child exits.

Run as `python -m tests.faults.ray_cluster`."""

from __future__ import annotations

import json
import logging
import sys
import time

from actors import local_cluster


def main() -> None:
    cluster = local_cluster.start(nodes=2)
    try:
        [worker] = cluster.workers
        print(json.dumps({"address": cluster.address, "worker": worker.node_id}), flush=True)
        for line in sys.stdin:
            if line.strip() == "where":
                table = cluster.cluster.global_state.actor_table(None)
                actors = {
                    a["Name"]: a["Address"]["NodeID"]
                    for a in table.values()
                    if a["Name"] and a["State"] == "ALIVE"
                }
                print(json.dumps({"actors": actors}), flush=True)
            elif line.strip() == "kill":
                cluster.kill(worker)
                print(json.dumps({"killed": time.time()}), flush=True)
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()

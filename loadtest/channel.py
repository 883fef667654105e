"""How a Locust process talks gRPC to windowpay.

Locust's users are greenlets, and grpc's blocking client is made cooperative by its
documented gevent support (`grpc.experimental.gevent.init_gevent`). That support waits
for every call in flight on a native thread of gevent's hub thread pool, which holds
10 threads unless told otherwise. A Pay held for a payer who is still confirming keeps
its thread for seconds; once the pool is taken, every other simulated window's call
waits for a thread, and that wait lands in Locust's response times although the
service answered in milliseconds. So the pool is sized to the calls a run can have in
flight (`size_for`), and no call ever queues for a thread.
"""

from __future__ import annotations

import gevent
import grpc
import grpc.experimental.gevent as grpc_gevent

from orchestrator.access import client

# The most calls one user (one window) has in flight at once: up to three concurrent
# copies of Pay, and the window's watch stream.
CALLS_PER_USER = 4
SPARE_THREADS = 8  # grpc's own greenlet dispatcher keeps one thread, and headroom


def prepare() -> None:
    """Before any grpc object exists: grpc's calls cooperate with gevent."""
    grpc_gevent.init_gevent()


def size_for(users: int, threads: int | None = None) -> int:
    """Give grpc's gevent support a thread for every call `users` can have in flight
    (or exactly `threads`, to see what too few of them do)."""
    size = threads if threads is not None else users * CALLS_PER_USER + SPARE_THREADS
    gevent.get_hub().threadpool.maxsize = size
    return size


def open_channel(target: str, identity: client.Identity) -> grpc.Channel:
    """The one place a load-test client opens its channel to the front door: mutual TLS,
    presenting `identity`'s certificate."""
    return identity.sync_channel(target)

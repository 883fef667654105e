"""CPU per call of the front door's two interceptors (access and metrics), in one process
over real mutual TLS on loopback (issue 27, item 3).

    .venv/bin/python -m loadtest.interceptor_bench [--calls 20000] [--repeat 5]

A development PKI is made in a temporary directory; a terminal (E1T1) calls
Terminal/Pay, whose servicer is a stub that answers at once, so that nothing but gRPC
and the interceptors runs. Limits are raised so that no call is refused. Two figures,
each taken `--repeat` times, in turn:

* direct: inside one real call of a bare server (so with that connection's real auth
  context, the client certificate as gRPC hands it over), what gRPC does per call with
  the front door's two interceptors (metrics outside access) is done `--calls` times:
  the chain is asked for the method's handler, as grpc.aio's server asks it, and the
  handler it gives, around the stub, is awaited. Its process CPU per call is the
  interceptors' work alone, plus one await of the stub.
* served: `--calls` calls of Terminal/Pay from one client, `--concurrency` in flight, to a
  server with both interceptors and to one with none; process CPU per call (client and
  server, every thread) of each, and the difference.

The machine is shared: give the range over the repeats, not one figure."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from orchestrator.access import client, pki
from orchestrator.access.identity import Identities
from orchestrator.access.interceptor import AccessInterceptor
from orchestrator.access.limits import Gate
from orchestrator.access.policy import Scope
from orchestrator.access.revocation import Revocations
from orchestrator.access.streams import OpenStreams
from orchestrator.access.tls import ServerTls
from orchestrator.domain.principals import AccessSettings, Directory, Limits
from orchestrator.frontdoor.telemetry import MetricsInterceptor
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from orchestrator.generated.windowpay.v1 import windowpay_pb2_grpc as pb_grpc

TERMINAL = "E1T1"
PAY = "/windowpay.v1.Terminal/Pay"
DRIVE = "/bench.Driver/Drive"
UNBOUNDED = Limits(terminal_calls=1_000_000, terminal_rate=1e12, terminal_burst=1_000_000_000)
ANSWER = pb.Order(order_id="E1-BENCH", state=pb.PAID)


class Stub(pb_grpc.TerminalServicer):
    async def Pay(self, request: pb.PayRequest, context: Any) -> pb.Order:
        return ANSWER


def interceptors(root: Path) -> list[grpc.aio.ServerInterceptor]:  # type: ignore[type-arg]
    """The front door's two interceptors, as frontdoor/server.py orders them."""
    paths = pki.PkiPaths(root)
    access = AccessInterceptor(
        Directory(AccessSettings(limits=UNBOUNDED), {TERMINAL: "E1W1"}, {"E1W1": "E1"}),
        Identities(paths.ca_cert, "windowpay"),
        Revocations(paths.crl, paths.ca_cert),
        Gate(UNBOUNDED),
        Scope({}),
        OpenStreams(),
    )
    return [MetricsInterceptor(), access]


class Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


async def chained(chain: Iterator[Any], handler: Any, details: Details) -> Any:
    """The handler a server with `chain` runs: each interceptor given the next as its
    continuation, as grpc.aio's server does for every call."""
    interceptor = next(chain, None)
    if interceptor is None:
        return handler
    return await interceptor.intercept_service(functools.partial(chained, chain, handler), details)


def _same(data: bytes) -> bytes:
    return data


async def direct(root: Path, calls: int) -> float:
    """CPU µs per call of the interceptors' handler, with a real call's context."""
    stub = grpc.unary_unary_rpc_method_handler(
        Stub().Pay,  # type: ignore[abstract]  # only Pay is called
        pb.PayRequest.FromString,
        pb.Order.SerializeToString,
    )
    chain = interceptors(root)
    details = Details(PAY)
    request = pb.PayRequest(terminal_id=TERMINAL)
    measured: list[float] = []

    async def one(context: Any) -> None:
        handler = await chained(iter(chain), stub, details)
        await handler.unary_unary(request, context)

    async def drive(data: bytes, context: Any) -> bytes:
        await one(context)  # warm: the certificate read, the handlers wrapped, the series
        started = time.process_time()
        for _ in range(calls):
            await one(context)
        measured.append((time.process_time() - started) / calls * 1e6)
        return b""

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "bench.Driver",
                {"Drive": grpc.unary_unary_rpc_method_handler(drive, _same, _same)},
            ),
        )
    )
    port = server.add_secure_port("127.0.0.1:0", ServerTls.of_pki(root).credentials())
    await server.start()
    try:
        async with client.of_pki(root, TERMINAL).channel(f"127.0.0.1:{port}") as channel:
            await channel.unary_unary(DRIVE, _same, _same)(b"", timeout=600)
    finally:
        await server.stop(None)
    return measured[0]


async def served(root: Path, calls: int, concurrency: int, *, intercepted: bool) -> float:
    """Process CPU µs per Terminal/Pay call, client and server together."""
    server = grpc.aio.server(interceptors=interceptors(root) if intercepted else None)
    pb_grpc.add_TerminalServicer_to_server(Stub(), server)  # type: ignore[abstract]
    port = server.add_secure_port("127.0.0.1:0", ServerTls.of_pki(root).credentials())
    await server.start()
    request = pb.PayRequest(terminal_id=TERMINAL)
    try:
        async with client.of_pki(root, TERMINAL).channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.TerminalStub(channel)
            for _ in range(50):  # the connection, the handshake, the first of everything
                await stub.Pay(request, timeout=10)
            left = calls

            async def worker() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    await stub.Pay(request, timeout=10)

            started = time.process_time()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return (time.process_time() - started) / calls * 1e6
    finally:
        await server.stop(None)


def _range(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 1),
        "median": round(statistics.median(values), 1),
        "max": round(max(values), 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, list[float]] = {"direct": [], "bare": [], "intercepted": []}
    with tempfile.TemporaryDirectory(prefix="interceptor-bench-") as tmp:
        root = Path(tmp)
        pki.init(root, [TERMINAL])
        steps: list[tuple[str, Callable[[], Awaitable[float]]]] = [
            ("direct", lambda: direct(root, args.calls)),
            ("bare", lambda: served(root, args.calls, args.concurrency, intercepted=False)),
            ("intercepted", lambda: served(root, args.calls, args.concurrency, intercepted=True)),
        ]
        for repeat in range(args.repeat):
            for name, step in steps:
                figures[name].append(await step())
            print(
                f"run {repeat + 1}: direct {figures['direct'][-1]:.1f} µs/call, served "
                f"{figures['bare'][-1]:.1f} bare, {figures['intercepted'][-1]:.1f} intercepted",
                flush=True,
            )
    added = [i - b for i, b in zip(figures["intercepted"], figures["bare"], strict=True)]
    return {
        "calls": args.calls,
        "concurrency": args.concurrency,
        "repeat": args.repeat,
        "direct_us_per_call": _range(figures["direct"]),
        "served_bare_us_per_call": _range(figures["bare"]),
        "served_intercepted_us_per_call": _range(figures["intercepted"]),
        "served_added_us_per_call": _range(added),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000, help="calls per measurement")
    parser.add_argument("--repeat", type=int, default=5, help="measurements of each kind")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight (served)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""A bare grpc.aio unary echo server: the yardstick for the benchmark.

python -m loadtest.echo --port 50099 --pki DIR

With --pki it serves the same mutual TLS as the front door: the server certificate of a
PKI made by `windowpay pki`, a client certificate signed by its CA required.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import grpc

from orchestrator.access.tls import ServerTls

METHOD = "/bench.Echo/Echo"


def _identity(data: bytes) -> bytes:
    return data


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def serve(port: int, pki_dir: Path | None = None) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {"Echo": grpc.unary_unary_rpc_method_handler(_echo, _identity, _identity)},
    )
    server.add_generic_rpc_handlers((handler,))
    if pki_dir is None:
        server.add_insecure_port(f"127.0.0.1:{port}")
    else:
        server.add_secure_port(f"127.0.0.1:{port}", ServerTls.of_pki(pki_dir).credentials())
    await server.start()
    print("READY", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pki", type=Path, help="serve mutual TLS with this PKI's certificates")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.pki))


if __name__ == "__main__":
    main()

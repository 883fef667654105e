"""`windowpay health`: ask a front door's standard gRPC health service whether it serves.

The container image's HEALTHCHECK and scripted supervisors use it. Exit status 0 when the
answer is SERVING, 1 otherwise (NOT_SERVING, no answer, timeout)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orchestrator.access import client
from orchestrator.runfile import RunInfo

DEFAULT_TARGET = "127.0.0.1:50051"


def status(
    target: str, identity: client.Identity, *, service: str = "", timeout_s: float = 3.0
) -> str:
    """The health service's answer by name (SERVING, NOT_SERVING, …), or UNREACHABLE.
    The probe presents `identity` (the `monitor` principal: health only)."""
    with identity.sync_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError:
            return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def target_of(data_dir: Path, given: str | None) -> str:
    if given:
        return given
    run = RunInfo.read(data_dir)
    if run is None:
        return DEFAULT_TARGET
    host, _, port = run.grpc.rpartition(":")
    # A front door listening on every interface is probed on loopback.
    return f"127.0.0.1:{port}" if host in ("0.0.0.0", "[::]", "::") else run.grpc


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "health",
        help="exit 0 if the front door answers SERVING on the gRPC health service",
        description="Probe a front door's gRPC health service (for HEALTHCHECK and supervisors).",
    )
    parser.add_argument("--target", help=f"HOST:PORT (default: run.json, else {DEFAULT_TARGET})")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get("WINDOWPAY_DATA_DIR", "var"),
        help="where serve left run.json (default: $WINDOWPAY_DATA_DIR, else ./var)",
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    client.add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    target = target_of(args.data_dir, args.target)
    try:
        identity = client.from_args(args, "monitor")
    except client.IdentityError as error:
        print(f"windowpay health: {error}", file=sys.stderr)
        return 1
    answer = status(target, identity, timeout_s=args.timeout)
    if not args.quiet:
        print(f"{target}: {answer}")
    return 0 if answer == "SERVING" else 1

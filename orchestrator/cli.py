"""The `windowpay` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from orchestrator import healthcheck, offices, pos
from orchestrator.access import cli as access
from orchestrator.access.pki import PkiError
from orchestrator.audit import commands as audit
from orchestrator.config import ConfigError, load_config
from orchestrator.console import staff
from orchestrator.reconcile import cli as backoffice
from orchestrator.record import cli as record
from orchestrator.sandbox import cli as sandbox
from orchestrator.telemetry import configure_logging

# `windowpay serve` exits with this status when it lost its Ray node (EX_TEMPFAIL):
# a supervisor should start it again. The old process is gone well within 30 s.
RAY_LOST = 75
CLOSE_AFTER_LOSS_S = 15.0


def _serve(args: argparse.Namespace) -> int:
    from orchestrator.bootstrap import start_service

    if args.join and not args.ray_address:
        print(
            "windowpay: --join needs the cluster's address (--ray-address or RAY_ADDRESS)",
            file=sys.stderr,
        )
        return 2
    if args.local_cluster is not None and (args.local_cluster < 2 or args.ray_address or args.join):
        print(
            "windowpay: --local-cluster takes 2 nodes or more, and neither --ray-address "
            "nor --join",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"windowpay: bad configuration: {error}", file=sys.stderr)
        return 2
    overrides: dict[str, object] = {}
    if args.log_level is not None:
        overrides["log_level"] = args.log_level
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    if args.metrics_host is not None:
        overrides["metrics_host"] = args.metrics_host
    if args.port is not None:
        overrides["grpc_port"] = args.port
    if args.host is not None:
        overrides["grpc_host"] = args.host
    if args.console_host is not None:
        overrides["console_host"] = args.console_host
    if args.console_port is not None:
        overrides["console_port"] = args.console_port
    if args.time_scale is not None:
        overrides["time_scale"] = args.time_scale
    config = config.with_settings(**overrides)
    if args.notify_host is not None:
        config = config.with_notify(host=args.notify_host)
    if args.notify_port is not None:
        config = config.with_notify(port=args.notify_port)
    configure_logging(config.settings.log_level)

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        running = await start_service(
            config,
            redis_url=args.redis_url,
            database_url=args.database_url,
            data_dir=args.data_dir,
            ray_address=args.ray_address,
            join=args.join,
            local_nodes=args.local_cluster or 0,
        )
        if stop.is_set():  # asked to stop while starting
            await running.close()
            return 0
        print(f"windowpay serving on {running.server.address} (Ctrl-C stops)", flush=True)
        if running.console:
            print(f"staff console on {running.console}", flush=True)
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopping, running.ray_lost], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        log = logging.getLogger("windowpay")
        if not running.ray_lost.done():
            log.info("stopping")
            await running.close()
            return 0
        # The supervision contract (docs/RELIABILITY.md): without its Ray node this
        # process cannot serve again, so it exits and its supervisor starts a new one.
        try:
            reason = running.ray_lost.result()
        except Exception as error:  # the watch itself failed: Ray cannot be trusted either
            reason = f"watching Ray failed ({error!r})"
        log.error("%s: exiting (status %d) to be restarted", reason, RAY_LOST)
        await running.stop_serving()
        try:
            await asyncio.wait_for(running.close(), CLOSE_AFTER_LOSS_S)
        except Exception as error:  # TimeoutError included
            log.error("incomplete shutdown after losing Ray: %r", error)
        return RAY_LOST

    try:
        code = asyncio.run(serve())
    except PkiError as error:
        print(f"windowpay: certificates: {error}", file=sys.stderr)
        return 2
    print("windowpay stopped" if code == 0 else "windowpay lost its Ray node", flush=True)
    return code


def _env(name: str, default: str | None = None) -> str | None:
    """`serve` options may also come from WINDOWPAY_<NAME> (the container image sets them)."""
    return os.environ.get(f"WINDOWPAY_{name}", default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="windowpay",
        description="Payment orchestration for government service windows.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run windowpay: Redis (embedded unless REDIS_URL), Ray actors, gRPC front door",
        description=(
            "Start the whole service on this machine. Without --redis-url or REDIS_URL an "
            "embedded Redis with append-only persistence runs under DATA_DIR/redis. "
            "--config, --host, --port, --metrics-host, --metrics-port and --data-dir default "
            "to WINDOWPAY_CONFIG, WINDOWPAY_HOST, ... when set. Exits with status 75 when it "
            "loses its Ray node: its supervisor should start it again."
        ),
    )
    serve.add_argument(
        "--config", type=Path, default=_env("CONFIG"), help="deployment TOML (default: the sample)"
    )
    serve.add_argument("--host", default=_env("HOST"), help="gRPC listen host (config: 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=_env("PORT"), help="gRPC listen port (config: 50051)"
    )
    serve.add_argument("--redis-url", help="use this Redis instead of an embedded one")
    serve.add_argument(
        "--database-url", help="the PostgreSQL record (default: DATABASE_URL, else embedded)"
    )
    serve.add_argument(
        "--data-dir", type=Path, default=_env("DATA_DIR", "var"), help="default: ./var"
    )
    serve.add_argument("--time-scale", type=float, help="multiply provider schedules (tests)")
    serve.add_argument(
        "--ray-address",
        default=os.environ.get("RAY_ADDRESS") or None,
        help="join this Ray cluster instead of starting one (default: RAY_ADDRESS, Ray's "
        "own variable, when set)",
    )
    serve.add_argument(
        "--local-cluster", type=int, metavar="NODES",
        help="start a Ray cluster of NODES nodes on this machine and spread the "
        "service-point actors over them (to try the cluster mode: make cluster)",
    )  # fmt: skip
    serve.add_argument(
        "--join", action="store_true",
        help="extra front door: use the actors an existing deployment created",
    )  # fmt: skip
    serve.add_argument(
        "--metrics-port",
        type=int,
        default=_env("METRICS_PORT"),
        help="/metrics, /sd (config: 9464)",
    )
    serve.add_argument("--metrics-host", default=_env("METRICS_HOST"), help="(config: 127.0.0.1)")
    serve.add_argument(
        "--console-host", help="console listen host (config: 127.0.0.1; 0.0.0.0 exposes it)"
    )
    serve.add_argument("--console-port", type=int, help="console port (config: 8470; 0: free)")
    serve.add_argument(
        "--notify-host",
        default=_env("NOTIFY_HOST"),
        help="provider notification listener host (config: 127.0.0.1)",
    )
    serve.add_argument(
        "--notify-port", type=int,
        help="provider notification listener port (config: 8471; 0: a free one). Every "
        "process runs a listener, a --join one too: on a host it shares, give it its own",
    )  # fmt: skip
    serve.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="(config: info)"
    )
    serve.set_defaults(handler=_serve)
    pos.add_parser(commands)
    commands.choices["pos"].set_defaults(handler=pos.run)
    backoffice.add_parsers(commands)
    access.add_parsers(commands)
    record.add_parsers(commands)
    audit.add_parsers(commands)
    healthcheck.add_parser(commands)
    staff.add_parsers(commands)
    sandbox.add_parsers(commands)
    offices.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

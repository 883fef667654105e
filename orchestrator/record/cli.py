"""`windowpay report` (totals from the record), `windowpay drain` (the drainer in the
foreground, for operators and tests) and `windowpay record archive` (old days out of the
record, into the archive). They find the record through `<data-dir>/run.json` or
--database-url / DATABASE_URL."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from datetime import date
from pathlib import Path

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from orchestrator.config import ConfigError, load_config
from orchestrator.domain.calendar import local_day
from orchestrator.domain.money import to_yuan
from orchestrator.record import partitions
from orchestrator.record.drainer import Drainer
from orchestrator.record.reader import DIMENSIONS, OfficeFilter, RecordReader, ReportRow
from orchestrator.runfile import RunInfo
from orchestrator.store.connect import connect
from orchestrator.telemetry import configure_logging


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use YYYY-MM-DD") from None


def _dimensions(text: str) -> list[str]:
    wanted = [d.strip() for d in text.split(",") if d.strip()]
    unknown = [d for d in wanted if d not in DIMENSIONS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"cannot group by {', '.join(unknown)}; choose from {', '.join(DIMENSIONS)}"
        )
    return wanted


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report",
        help="totals from the record by day, office, site, service point, window, channel, "
        "fee item",
        description=(
            "Payments and refunds that succeeded on the local days FROM..TO, read from the "
            "PostgreSQL record, grouped as --by says, of one office's orders with --office. "
            "Grouped by fee_item, the totals are what the paid orders' lines came to."
        ),
    )
    report.add_argument("--from", dest="first", type=_day, required=True, help="YYYY-MM-DD")
    report.add_argument("--to", dest="last", type=_day, help="YYYY-MM-DD (default: --from)")
    report.add_argument(
        "--by", type=_dimensions, default=["day"],
        help=f"comma-separated, of {','.join(DIMENSIONS)} (default: day)",
    )  # fmt: skip
    report.add_argument(
        "--office", metavar="ID",
        help="only the orders of this office (an id of the config's [[offices]])",
    )  # fmt: skip
    report.add_argument(
        "--config", type=Path, help="deployment TOML, for --office (default: as served)"
    )
    report.add_argument("--json", action="store_true", help="one JSON object per row")
    _common(report)
    report.set_defaults(handler=run_report)

    drain = commands.add_parser(
        "drain",
        help="run the record drainer in the foreground (serve runs it as a Ray actor)",
    )
    drain.add_argument("--config", type=Path, help="deployment TOML (default: as served)")
    drain.add_argument("--redis-url", help="default: the running deployment's")
    _common(drain)
    drain.set_defaults(handler=run_drain)

    record = commands.add_parser("record", help="the PostgreSQL record's business days")
    what = record.add_subparsers(dest="record_command", required=True)
    archive = what.add_parser(
        "archive",
        help="move the days before a date out of the record, into the archive",
        description=(
            "Detach every table's partition of each business day before --before from the "
            "record and attach it to the schema record_archive, one day per transaction, "
            "oldest first, printing each day as it goes. Nothing is copied or deleted: the "
            "rows stay as they were, `windowpay report`, settlement and reconciliation "
            "still read them, and a late change of an archived day brings that day back. "
            "Running it again moves only what is left. Today and later days stay."
        ),
    )
    archive.add_argument(
        "--before", type=_day, required=True, help="YYYY-MM-DD: the first day to keep"
    )
    archive.add_argument(
        "--dry-run", action="store_true", help="only list the days that would move"
    )
    archive.add_argument("--config", type=Path, help="deployment TOML (its time zone)")
    _common(archive)
    archive.set_defaults(handler=run_archive)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path("var"), help="default: ./var")
    parser.add_argument("--database-url", help="default: DATABASE_URL, else the running one's")


def _database_url(args: argparse.Namespace, info: RunInfo | None) -> str:
    return (
        args.database_url or os.environ.get("DATABASE_URL") or (info.database_url if info else "")
    )


def _office(args: argparse.Namespace, info: RunInfo | None) -> OfficeFilter | None:
    """The office --office names, as the deployment's config has it; raises ConfigError
    for a bad config or an office it does not have."""
    if args.office is None:
        return None
    config = load_config(args.config or (Path(info.config) if info and info.config else None))
    places = config.deployment.places
    office = places.office(args.office)
    if office is None:
        known = ", ".join(repr(o.id) for o in places.offices)
        raise ConfigError(f"unknown office {args.office!r}; {config.source} has {known}")
    return OfficeFilter(office.id, office.service_points)


def run_report(args: argparse.Namespace) -> int:
    info = RunInfo.read(args.data_dir)
    url = _database_url(args, info)
    if not url:
        print("windowpay report: no record found; give --database-url", file=sys.stderr)
        return 2
    last = args.last or args.first
    if last < args.first:
        print("windowpay report: --to is before --from", file=sys.stderr)
        return 2
    try:
        office = _office(args, info)
    except ConfigError as error:
        print(f"windowpay report: {error}", file=sys.stderr)
        return 2

    async def fetch() -> list[ReportRow]:
        async with AsyncConnectionPool(url, min_size=1, max_size=1) as pool:
            return await RecordReader(pool).report(args.first, last, args.by, office)

    rows = asyncio.run(fetch())
    if args.json:
        for row in rows:
            print(
                json.dumps(
                    {
                        **row.key,
                        "payments": row.payments,
                        "payments_fen": row.payments_fen,
                        "refunds": row.refunds,
                        "refunds_fen": row.refunds_fen,
                        "net_fen": row.net_fen,
                    },
                    ensure_ascii=False,
                )
            )
        return 0
    names = args.by or ["total"]
    of_office = "" if office is None else f" of office {office.office_id}"
    print(f"windowpay report {args.first}..{last}{of_office} by {', '.join(names)}")
    header = [f"{n:<12}" for n in names]
    print(" ".join(header), f"{'payments':>9} {'yuan':>12} {'refunds':>8} {'yuan':>12} {'net':>12}")
    for row in rows:
        print(
            " ".join(f"{row.key[n]:<12}" for n in names),
            f"{row.payments:>9} {to_yuan(row.payments_fen):>12} {row.refunds:>8} "
            f"{to_yuan(row.refunds_fen):>12} {to_yuan(row.net_fen):>12}",
        )
    total_in = sum(r.payments_fen for r in rows)
    total_out = sum(r.refunds_fen for r in rows)
    print(f"total: {to_yuan(total_in)} yuan taken, {to_yuan(total_out)} yuan given back")
    return 0


def run_drain(args: argparse.Namespace) -> int:
    info = RunInfo.read(args.data_dir)
    url = _database_url(args, info)
    redis_url = args.redis_url or os.environ.get("REDIS_URL") or (info.redis_url if info else "")
    if not url or not redis_url:
        print("windowpay drain: give --database-url and --redis-url", file=sys.stderr)
        return 2
    try:
        path = args.config or (Path(info.config) if info and info.config else None)
        config = load_config(path)
    except ConfigError as error:
        print(f"windowpay drain: bad configuration: {error}", file=sys.stderr)
        return 2
    configure_logging(config.settings.log_level)

    async def drain() -> None:
        redis = connect(redis_url)
        async with AsyncConnectionPool(
            url, min_size=1, max_size=2, open=False, check=AsyncConnectionPool.check_connection
        ) as pool:
            drainer = Drainer(redis, pool, config)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, drainer.stop)
            print("draining (Ctrl-C stops)", flush=True)
            await drainer.run()
        await redis.aclose()

    asyncio.run(drain())
    return 0


def run_archive(args: argparse.Namespace) -> int:
    info = RunInfo.read(args.data_dir)
    url = _database_url(args, info)
    if not url:
        print("windowpay record archive: no record found; give --database-url", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config or (Path(info.config) if info and info.config else None))
    except ConfigError as error:
        print(f"windowpay record archive: bad configuration: {error}", file=sys.stderr)
        return 2
    today = local_day(int(time.time() * 1000), config.settings.zone).date()
    if args.before > today:
        print(
            f"windowpay record archive: --before {args.before} is after today ({today}); "
            "today and later days stay in the record",
            file=sys.stderr,
        )
        return 2

    def shown(moved: partitions.Archived) -> None:
        rows = ", ".join(f"{table} {n}" for table, n in moved.rows.items())
        print(f"{moved.day}: archived ({rows})", flush=True)

    async def move() -> int:
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            days = [d for d in await partitions.attached_days(conn) if d < args.before]
            kept = len(await partitions.attached_days(conn, partitions.ARCHIVE))
            print(
                f"{len(days)} day(s) before {args.before} to archive"
                f"{'' if not days else f' ({days[0]} .. {days[-1]})'}; "
                f"{kept} day(s) already in the archive",
                flush=True,
            )
            if args.dry_run or not days:
                return 0
            done = await partitions.archive(conn, args.before, shown)
            print(f"done: {len(done)} day(s) archived", flush=True)
            return 0

    try:
        return asyncio.run(move())
    except psycopg.errors.LockNotAvailable:
        print(
            "windowpay record archive: the record stayed busy for 10 s (a long report?); "
            "the days done so far are archived, run the command again",
            file=sys.stderr,
        )
        return 1

"""`windowpay audit close` and `windowpay audit verify`: the day's signed roots, and the
check of the record against them (docs/RECORD.md, "The audit chain")."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict
from datetime import date
from pathlib import Path

import psycopg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrator.audit.job import AlreadyClosed, NotClosable, close_day, keep_outcome
from orchestrator.audit.roots import (
    AuditKeyError,
    check_pinned,
    fingerprint,
    load_private_key,
    load_public_key,
    public_key_path,
)
from orchestrator.audit.verify import Finding, Report, Verifier
from orchestrator.config import ConfigError, load_config
from orchestrator.runfile import RunInfo
from orchestrator.store.connect import connect

FOUND = 1  # exit status of verify when anything was found
USAGE = 2


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use YYYY-MM-DD") from None


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser(
        "audit",
        help="close a day with signed chain roots; verify the record against them",
        description="The record's audit: each service point's journal is a hash chain per "
        "business day; `close` signs each day's root with the audit key, `verify` checks "
        "the record against the signed roots.",
    )
    actions = audit.add_subparsers(dest="action", required=True)
    close = actions.add_parser(
        "close",
        help="sign the day's chain roots (run after the day's settlement)",
        description="Recompute each service point's chain of DATE from the record; if it "
        "is whole and ends where Redis's live head does (the record caught up), sign its "
        "root, entries, payments and refunds with the audit key (<keys>/audit/audit.key), "
        "and write them to <data-dir>/audit/roots-DATE.json and the audit_roots table. "
        "A day is signed once: a day with a roots file or a database root is refused. "
        "Exits 1 (signing nothing) when the chain has findings, the record lags, Redis "
        "has no head for a chain, the day has not ended or is closed already; 2 when the "
        "record or Redis cannot be reached.",
    )
    close.add_argument("--date", type=_day, required=True, help="the business day, YYYY-MM-DD")
    close.add_argument(
        "--without-redis",
        action="store_true",
        help="close without Redis's chain heads (only when Redis has lost the day: the "
        "record's chain is then signed as it stands, a truncation included)",
    )
    _common(close)
    close.set_defaults(handler=run_close)
    verify = actions.add_parser(
        "verify",
        help="check the day's record against its signed roots; exit 1 on any finding",
        description="Recompute every journal chain of DATE from PostgreSQL and check: each "
        "entry's hash over its content and its link to the entry before it; the chain's "
        "root, count and totals against the signed root (and the root's signature with "
        "the audit public key); the orders, lines, attempts and refunds rows against the "
        "chain; Redis's live chain heads and journals where Redis still holds them. "
        "Names the first altered, missing, inserted or reordered entry and what changed. "
        "Exit status: 0 the day is intact, 1 something was found, 2 it could not run.",
    )
    verify.add_argument("--date", type=_day, required=True, help="the business day, YYYY-MM-DD")
    verify.add_argument("--service-point", help="only this service point (default: all)")
    verify.add_argument(
        "--public-key", type=Path, help="the audit public key (default: <keys>/audit/audit.pub)"
    )
    verify.add_argument("--no-redis", action="store_true", help="do not cross-check Redis")
    verify.add_argument("--json", action="store_true", help="print the findings as JSON lines")
    _common(verify)
    verify.set_defaults(handler=run_verify)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path("var"), help="default: ./var")
    parser.add_argument("--config", type=Path, help="deployment TOML (default: the running one's)")
    parser.add_argument("--database-url", help="default: DATABASE_URL, else the running one's")
    parser.add_argument("--redis-url", help="default: REDIS_URL, else the running one's")
    parser.add_argument(
        "--audit-dir", type=Path, help="where the signed roots are exported (<data-dir>/audit)"
    )


class _Setup:
    def __init__(self, args: argparse.Namespace, name: str) -> None:
        info = RunInfo.read(args.data_dir)
        self.database_url = (
            args.database_url
            or os.environ.get("DATABASE_URL")
            or (info.database_url if info else "")
        )
        self.redis_url = (
            args.redis_url or os.environ.get("REDIS_URL") or (info.redis_url if info else "")
        )
        path = args.config or (Path(info.config) if info and info.config else None)
        self.config = load_config(path)
        keys_dir = Path(info.keys_dir) if info and info.keys_dir else Path(self.config.keys_dir)
        self.keys_dir = keys_dir if keys_dir.is_absolute() else args.data_dir / keys_dir
        self.audit_dir: Path = args.audit_dir or args.data_dir / "audit"
        self.points = [sp.id for sp in self.config.deployment.service_points]
        if not self.database_url:
            raise ConfigError(f"windowpay audit {name}: no record found; give --database-url")


async def _redis(url: str) -> Redis | None:
    if not url:
        return None
    redis = connect(url)
    try:
        await redis.ping()
    except (RedisError, OSError):
        await redis.aclose()
        return None
    return redis


def run_close(args: argparse.Namespace) -> int:
    try:
        setup = _Setup(args, "close")
        key = load_private_key(setup.keys_dir)
        check_pinned(key.public_key(), setup.config.record.audit_public_key_sha256)
    except (ConfigError, AuditKeyError) as error:
        print(f"windowpay audit close: {error}", file=sys.stderr)
        return USAGE

    async def close() -> int:
        redis = None
        if not args.without_redis:
            redis = await _redis(setup.redis_url)
            if redis is None:
                print(
                    f"windowpay audit close: {args.date} not signed: Redis "
                    f"{'is not configured' if not setup.redis_url else 'cannot be reached'}; "
                    "its chain heads are what shows the record's chains are whole "
                    "(--without-redis only if Redis has lost the day)",
                    file=sys.stderr,
                )
                return USAGE
        try:
            async with await psycopg.AsyncConnection.connect(setup.database_url) as conn:
                roots, path = await close_day(
                    conn, key, args.date, setup.points, setup.audit_dir, redis,
                    zone=setup.config.settings.zone,
                )  # fmt: skip
        except (NotClosable, AlreadyClosed) as refused:
            print(f"windowpay audit close: {args.date} not signed: {refused}", file=sys.stderr)
            return FOUND
        finally:
            if redis is not None:
                await redis.aclose()
        for root in roots:
            t = root.totals()
            print(
                f"{root.service_point} {args.date}: {t.entries} entries, root {t.root[:16]}…, "
                f"{t.payments} payments {t.payments_fen} fen, {t.refunds} refunds "
                f"{t.refunds_fen} fen"
            )
        print(f"signed roots written to {path}")
        return 0

    try:
        return asyncio.run(close())
    except (psycopg.Error, OSError) as error:
        print(f"windowpay audit close: cannot read the record: {error}", file=sys.stderr)
        return USAGE


def run_verify(args: argparse.Namespace) -> int:
    try:
        setup = _Setup(args, "verify")
        public = load_public_key(args.public_key or public_key_path(setup.keys_dir))
        check_pinned(public, setup.config.record.audit_public_key_sha256)
    except (ConfigError, AuditKeyError) as error:
        print(f"windowpay audit verify: {error}", file=sys.stderr)
        return USAGE
    print(
        f"audit public key sha256 {fingerprint(public)}"
        f"{' (pinned)' if setup.config.record.audit_public_key_sha256 else ''}",
        file=sys.stderr if args.json else sys.stdout,
    )

    async def verify() -> Report:
        redis = None if args.no_redis else await _redis(setup.redis_url)
        try:
            async with await psycopg.AsyncConnection.connect(setup.database_url) as conn:
                verifier = Verifier(
                    conn,
                    redis=redis,
                    public_key=public,
                    audit_dir=setup.audit_dir,
                    service_points=setup.points,
                )
                try:
                    report = await verifier.verify(args.date, args.service_point)
                except (psycopg.OperationalError, OSError):
                    raise  # the record cannot be read: nothing was verified (exit 2)
                except Exception as error:  # anything else: the day is not shown intact
                    await conn.rollback()
                    report = Report(args.date)
                    report.findings.append(
                        Finding(
                            args.service_point or "*",
                            "ERROR",
                            "verify",
                            f"the verification stopped: {error!r}; the day is not shown intact",
                        )
                    )
                await keep_outcome(conn, report, args.service_point, redis)
                return report
        finally:
            if redis is not None:
                await redis.aclose()

    try:
        report = asyncio.run(verify())
    except (psycopg.Error, OSError) as error:  # no record to read: nothing was verified
        print(f"windowpay audit verify: cannot read the record: {error}", file=sys.stderr)
        return USAGE
    if args.json:
        for finding in report.findings:
            print(json.dumps(asdict(finding), ensure_ascii=False))
    else:
        for finding in report.findings:
            print(finding)
    scope = args.service_point or f"{len(report.totals)} service point(s)"
    verdict = "intact" if report.ok else f"{len(report.findings)} finding(s)"
    print(
        f"audit verify {args.date} ({scope}): {report.entries} entries in "
        f"{report.seconds:.1f} s: {verdict}",
        file=sys.stderr if args.json else sys.stdout,
    )
    return 0 if report.ok else FOUND

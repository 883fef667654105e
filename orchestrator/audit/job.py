"""Closing a day (its signed roots) and keeping the outcome of each verification where
the console and the alerts find it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, timedelta, tzinfo
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection
from redis.asyncio import Redis

from orchestrator.audit.roots import (
    SignedRoot,
    Totals,
    roots_file,
    sign,
    store_roots,
    stored_roots,
    write_file,
)
from orchestrator.audit.verify import Finding, Report, Verifier
from orchestrator.domain.calendar import local_day
from orchestrator.store import chain, keys

KEEP_OUTCOMES_DAYS = 60


class NotClosable(Exception):
    """The day cannot be signed: its chain in the record has findings, the record has
    not caught up with Redis yet, Redis has no head for a chain the record has, or the
    day has not ended."""

    def __init__(self, report: Report) -> None:
        self.report = report
        first = report.findings[0]
        super().__init__(f"{len(report.findings)} finding(s), the first: {first}")


class AlreadyClosed(Exception):
    """The day has a signed root already (its file or its database copy): roots are
    written once, never signed over."""


async def close_day(
    conn: AsyncConnection[Any],
    key: Ed25519PrivateKey,
    day: date,
    service_points: Sequence[str],
    audit_dir: Path,
    redis: Redis | None = None,
    *,
    zone: tzinfo | None = None,
    now_ms: int | None = None,
) -> tuple[list[SignedRoot], Path]:
    """Sign each service point's root of the day from the record, once the record's chain
    is whole and ends at Redis's head (with Redis given, every chain must have its head
    there); export and store them.

    Raises AlreadyClosed if the day's roots file or any database root exists (even if the
    other copy was removed), and, with `zone`, NotClosable while the day has not ended."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    path = roots_file(audit_dir, day)
    if path.exists():
        raise AlreadyClosed(f"{day} is closed already: {path} exists")
    if await stored_roots(conn, day):
        raise AlreadyClosed(f"{day} is closed already: the record holds its roots")
    if zone is not None and local_day(now, zone).date() <= day:
        report = Report(day)
        report.findings.append(
            Finding("*", "OPEN", day.isoformat(), f"the day has not ended in {zone}")
        )
        raise NotClosable(report)
    report = await Verifier(conn, redis=redis).verify(day, roots=False, closing=True)
    if report.findings:
        raise NotClosable(report)
    roots = [
        sign(key, day, sp, report.totals.get(sp, Totals(0, chain.GENESIS)), now)
        for sp in sorted(set(service_points) | set(report.totals))
    ]
    path = write_file(audit_dir, day, roots)
    await store_roots(conn, day, roots)
    return roots, path


async def keep_outcome(
    conn: AsyncConnection[Any], report: Report, sp: str | None, redis: Redis | None
) -> None:
    """The verification's outcome: a row for the console, a field for the alert."""
    first = str(report.findings[0]) if report.findings else ""
    now = time.time()
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(
            """
            INSERT INTO audit_verifications (day, service_point_id, ok, entries, findings,
                first_finding, ran_at_ms, duration_s)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (day, service_point_id) DO UPDATE SET
                ok = EXCLUDED.ok, entries = EXCLUDED.entries, findings = EXCLUDED.findings,
                first_finding = EXCLUDED.first_finding, ran_at_ms = EXCLUDED.ran_at_ms,
                duration_s = EXCLUDED.duration_s
            """,
            (
                report.day, sp or "", report.ok, report.entries, len(report.findings), first,
                int(now * 1000), report.seconds,
            ),
        )  # fmt: skip
    if redis is None:
        return
    field = report.day.isoformat() if sp is None else f"{report.day.isoformat()} {sp}"
    outcome = {"ok": report.ok, "findings": len(report.findings), "at": now}
    await redis.hset(keys.AUDIT_VERIFIED, field, orjson.dumps(outcome))
    old = (report.day - timedelta(days=KEEP_OUTCOMES_DAYS)).isoformat()
    fields: list[bytes] = await redis.hkeys(keys.AUDIT_VERIFIED)  # type: ignore[assignment]
    # outcomes long past, and those of single service points a whole day's run supersedes
    stale = [
        f
        for f in fields
        if f.decode()[:10] < old or (sp is None and f.decode().startswith(f"{field} "))
    ]
    if stale:
        await redis.hdel(keys.AUDIT_VERIFIED, *stale)


def summarise(outcomes: dict[bytes, bytes]) -> tuple[int, float]:
    """From the outcomes kept in Redis: days broken now, and the last verification."""
    broken: set[str] = set()
    last = 0.0
    for field, value in outcomes.items():
        outcome = orjson.loads(value)
        last = max(last, float(outcome["at"]))
        if not outcome["ok"]:
            broken.add(field.decode()[:10])
    return len(broken), last

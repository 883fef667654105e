"""The day closed by itself: once a business day (a local calendar day, as the chain
and the settlement count it) has ended and CLOSE_DELAY has passed, the drainer signs its
roots if nobody did (`windowpay audit close` does the same by hand), then verifies it
and keeps the outcome. While the record lags behind Redis the day is not closable yet,
and the closer tries again later (windowpay_audit_day_not_closed is 1 meanwhile). A day
with a roots file or a database root is never signed again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from orchestrator.audit.job import AlreadyClosed, NotClosable, close_day, keep_outcome
from orchestrator.audit.roots import load_private_key, private_key_path
from orchestrator.audit.verify import Verifier
from orchestrator.domain.calendar import local_day
from orchestrator.metrics import AUDIT_DAY_NOT_CLOSED

log = logging.getLogger(__name__)
CLOSE_DELAY = timedelta(minutes=30)  # after midnight: the drainer has caught up by then
CHECK_EVERY_S = 60.0


class DailyCloser:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        redis: Redis,
        keys_dir: Path,
        audit_dir: Path,
        service_points: Sequence[str],
        zone: tzinfo,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._keys_dir = keys_dir
        self._audit_dir = audit_dir
        self._points = list(service_points)
        self._zone = zone
        self._now_ms = now_ms
        self._checked = 0.0
        self._closed: set[date] = set()

    def due(self) -> date | None:
        """Yesterday, once CLOSE_DELAY past midnight; None before."""
        local = local_day(self._now_ms(), self._zone)
        today = datetime.combine(local.date(), datetime.min.time(), tzinfo=local.tzinfo)
        if local - today < CLOSE_DELAY:
            return None
        return local.date() - timedelta(days=1)

    async def run_once(self, *, force: bool = False) -> date | None:
        """Close the due day unless it is closed; the day closed now, if any."""
        if not force and time.monotonic() - self._checked < CHECK_EVERY_S:
            return None
        self._checked = time.monotonic()
        day = self.due()
        if day is None or day in self._closed:
            return None
        if not private_key_path(self._keys_dir).exists():
            return None  # this host does not hold the audit key: closed by hand elsewhere
        key = load_private_key(self._keys_dir)
        async with self._pool.connection() as conn:
            try:
                await close_day(
                    conn, key, day, self._points, self._audit_dir, self._redis,
                    zone=self._zone, now_ms=self._now_ms(),
                )  # fmt: skip
            except AlreadyClosed as closed:  # by hand, or before a restart: never again
                log.info("business day %s not signed again: %s", day, closed)
                AUDIT_DAY_NOT_CLOSED.set(0)
                self._closed.add(day)
                return None
            except NotClosable as refused:
                log.warning("business day %s not closed yet: %s", day, refused)
                AUDIT_DAY_NOT_CLOSED.set(1)
                return None
            AUDIT_DAY_NOT_CLOSED.set(0)
            self._closed.add(day)
            log.info("business day %s closed: its signed roots are in %s", day, self._audit_dir)
            # Verified at once, against the roots just written: the outcome the console
            # and WindowpayAuditNotVerified / WindowpayAuditChainBroken go by.
            report = await Verifier(
                conn, redis=self._redis, public_key=key.public_key(),
                audit_dir=self._audit_dir, service_points=self._points,
            ).verify(day)  # fmt: skip
            await keep_outcome(conn, report, None, self._redis)
        if not report.ok:
            log.error("business day %s signed but not verified: %s", day, report.findings[0])
        return day

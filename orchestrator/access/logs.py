"""Warnings about refused calls, at most one line per key and interval.

A caller that is refused a thousand times a second must not write a thousand log lines
a second: the first refusal of a kind (principal and reason) is logged, the next ones
within the interval are only counted, and the next line logged says how many were held
back. The counters (`windowpay_access_*_total`) still count every one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

INTERVAL_S = 60.0
MOST_KINDS = 4096  # kinds remembered at once; the oldest are forgotten beyond


class ThrottledWarnings:
    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        most_kinds: int = MOST_KINDS,
    ) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._clock = clock
        self._most = most_kinds
        self._kinds: dict[Hashable, tuple[float, int]] = {}  # kind -> (logged at, held back)

    def warning(self, kind: Hashable, message: str, extra: dict[str, Any]) -> None:
        now = self._clock()
        seen = self._kinds.get(kind)
        if seen is not None and now - seen[0] < self._interval_s:
            self._kinds[kind] = (seen[0], seen[1] + 1)
            return
        held = seen[1] if seen is not None else 0
        if seen is None and len(self._kinds) >= self._most:
            self._forget(now)
        self._kinds[kind] = (now, 0)
        if held:
            message = (
                f"{message} ({held} more like it not logged in the last {self._interval_s:g} s)"
            )
        self._log.warning(message, extra={**extra, "suppressed": held})

    def _forget(self, now: float) -> None:
        """Drop the kinds whose interval has ended, else the oldest half."""
        stale = [k for k, (at, _) in self._kinds.items() if now - at >= self._interval_s]
        for kind in (
            stale or sorted(self._kinds, key=lambda k: self._kinds[k][0])[: len(self._kinds) // 2]
        ):
            del self._kinds[kind]

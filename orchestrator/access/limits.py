"""Per-principal bounds kept in one front door's memory: calls in flight, a token
bucket per terminal, and open streams. Pure bookkeeping, time passed in."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from orchestrator.domain.principals import Limits, Principal, Role


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class Gate:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._calls: Counter[str] = Counter()
        self._streams: Counter[str] = Counter()
        self._buckets: dict[str, _Bucket] = {}

    def _max_calls(self, principal: Principal) -> int:
        limits = self.limits
        return limits.terminal_calls if principal.role is Role.TERMINAL else limits.other_calls

    def rate_of(self, principal: Principal) -> tuple[float, int]:
        """Calls per second, sustained, and the burst: every role has its bucket."""
        limits = self.limits
        if principal.role is Role.TERMINAL:
            return limits.terminal_rate, limits.terminal_burst
        if principal.role is Role.BUSINESS:
            return limits.business_rate, limits.business_burst
        return limits.other_rate, limits.other_burst

    def rate_ok(self, principal: Principal, now: float) -> bool:
        """Take one token from the principal's bucket."""
        rate, burst = self.rate_of(principal)
        bucket = self._buckets.get(principal.name)
        if bucket is None:
            bucket = self._buckets[principal.name] = _Bucket(float(burst), now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def enter(self, principal: Principal, *, stream: bool) -> str | None:
        """Count a call (and a stream) in; the reason when a bound is reached."""
        name = principal.name
        if self._calls[name] >= self._max_calls(principal):
            return f"more than {self._max_calls(principal)} calls in flight"
        if stream and self._streams[name] >= self.limits.streams:
            return f"more than {self.limits.streams} streams open"
        self._calls[name] += 1
        if stream:
            self._streams[name] += 1
        return None

    def leave(self, principal: Principal, *, stream: bool) -> None:
        name = principal.name
        self._calls[name] -= 1
        if self._calls[name] <= 0:
            del self._calls[name]
        if stream:
            self._streams[name] -= 1
            if self._streams[name] <= 0:
                del self._streams[name]

    def in_flight(self, name: str) -> tuple[int, int]:
        return self._calls[name], self._streams[name]

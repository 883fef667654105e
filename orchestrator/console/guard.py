"""Sessions, CSRF tokens, and the throttles of sign-in and the payer lookup. Time is
passed in (a clock callable) so that the rules are tested without waiting."""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]

SESSION_TTL_S = 8 * 3600
LOCK_AFTER_FAILURES = 5
LOCK_FOR_S = 15 * 60


@dataclass(slots=True)
class Session:
    username: str
    csrf: str
    expires_at: float


class Sessions:
    """Server-side sessions: the cookie holds only a random token."""

    def __init__(self, clock: Clock = time.monotonic, ttl_s: float = SESSION_TTL_S) -> None:
        self._clock = clock
        self._ttl = ttl_s
        self._by_token: dict[str, Session] = {}

    def open(self, username: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(username, secrets.token_urlsafe(32), self._clock() + self._ttl)
        self._by_token[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        session = self._by_token.get(token or "")
        if session is None:
            return None
        if session.expires_at < self._clock():
            del self._by_token[token or ""]
            return None
        return session

    def close(self, token: str | None) -> None:
        self._by_token.pop(token or "", None)

    def close_all(self, username: str) -> None:
        for token in [t for t, s in self._by_token.items() if s.username == username]:
            del self._by_token[token]


def csrf_ok(session: Session, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(session.csrf, submitted or "")


class RateLimit:
    """At most `limit` events per `window_s` per key (a sliding window)."""

    def __init__(self, limit: int, window_s: float, clock: Clock = time.monotonic) -> None:
        self.limit = limit
        self._window = window_s
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = self._clock()
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self._window:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True


@dataclass(slots=True)
class _Failures:
    count: int = 0
    locked_until: float = 0.0


@dataclass
class SignInGuard:
    """Sign-in attempts limited per client address; an account locks after repeated
    failures, whatever address they come from."""

    clock: Clock = time.monotonic
    per_address: RateLimit = field(init=False)
    _failures: dict[str, _Failures] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.per_address = RateLimit(20, 60.0, self.clock)

    def locked(self, username: str) -> bool:
        return self._failures.get(username, _Failures()).locked_until > self.clock()

    def failed(self, username: str) -> None:
        failures = self._failures.setdefault(username, _Failures())
        failures.count += 1
        if failures.count >= LOCK_AFTER_FAILURES:
            failures.locked_until = self.clock() + LOCK_FOR_S
            failures.count = 0

    def succeeded(self, username: str) -> None:
        self._failures.pop(username, None)

"""Sessions, CSRF tokens, and the throttles of sign-in and the payer lookup. Time is
passed in (a clock callable) so that the rules are tested without waiting.

Every throttle is keyed on the client's address as `client_address` finds it, and keeps
a bounded number of counters: the least recently used go first, and counters with
nothing to hold are purged as they come to that end."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Clock = Callable[[], float]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

SESSION_TTL_S = 8 * 3600
SESSION_IDLE_S = 30 * 60  # a session no request used this long is over
LOCK_AFTER_FAILURES = 5  # wrong passwords in a row, for one account from one address
FIRST_LOCK_S = 60.0  # the wait after them; each further wrong one doubles it...
LONGEST_LOCK_S = 3600.0  # ...up to this
FORGET_AFTER_S = 86_400.0  # failures are forgotten a day after the last one
MOST_COUNTERS = 10_000  # per throttle
MOST_LOCKS = 100_000  # a lock is dropped before its time only past this many entries


@dataclass(slots=True)
class Session:
    username: str
    csrf: str
    expires_at: float
    epoch: int  # the account's credential epoch at sign-in: a change ends the session
    last_seen: float = 0.0


class Sessions:
    """Server-side sessions: the cookie holds only a random token."""

    def __init__(
        self,
        clock: Clock = time.monotonic,
        ttl_s: float = SESSION_TTL_S,
        idle_s: float = SESSION_IDLE_S,
    ) -> None:
        self._clock = clock
        self._ttl = ttl_s
        self._idle = idle_s
        self._by_token: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._by_token)

    def _over(self, session: Session, now: float) -> bool:
        return session.expires_at < now or session.last_seen + self._idle < now

    def open(self, username: str, epoch: int) -> tuple[str, Session]:
        """A new session; those over (8 hours old, or unused for 30 minutes) are purged."""
        now = self._clock()
        for token in [t for t, s in self._by_token.items() if self._over(s, now)]:
            del self._by_token[token]
        token = secrets.token_urlsafe(32)
        session = Session(username, secrets.token_urlsafe(32), now + self._ttl, epoch, now)
        self._by_token[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        now = self._clock()
        session = self._by_token.get(token or "")
        if session is None:
            return None
        if self._over(session, now):
            del self._by_token[token or ""]
            return None
        session.last_seen = now
        return session

    def close(self, token: str | None) -> None:
        self._by_token.pop(token or "", None)


def csrf_ok(session: Session, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(session.csrf, submitted or "")


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]
) -> str:
    """The address a request comes from: its peer's, unless the peer is a trusted proxy;
    then, reading `X-Forwarded-For` from the right, the first address that is not a
    trusted proxy. Hops further left were written by the client and prove nothing; a
    hop that is not an address leaves the last proxy's address standing."""
    current = _address(peer or "")
    if current is None:
        return peer or ""
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    while hops and any(current in network for network in trusted):
        hop = _address(hops.pop())
        if hop is None:
            break
        current = hop
    return str(current)


def throttle_key(address: str) -> str:
    """What the throttles count a client under: its IPv4 address, or the /64 of its IPv6
    address (a client has at least a /64 and may take any address in it)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address


def _address(text: str) -> Address | None:
    """An IP address, also as a proxy may write it with a port ("[::1]:80", "1.2.3.4:80")."""
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _forget(
    entries: OrderedDict[Any, Any],
    stale: Callable[[Any], bool],
    held: Callable[[Any], bool] = lambda _: False,
) -> None:
    """Drop stale entries from the least recently used end; beyond the bound, the oldest
    that hold no lock (a flood of new addresses must not lift a lock), and past
    MOST_LOCKS the oldest whatever they hold. The entry just used is at the other end."""
    while entries:
        key, value = next(iter(entries.items()))
        if not stale(value):
            break
        del entries[key]
    passes = len(entries)  # each held entry is passed over at most once
    while len(entries) > MOST_COUNTERS and passes > 0:
        passes -= 1
        key, value = next(iter(entries.items()))
        if held(value) and len(entries) <= MOST_LOCKS:
            entries.move_to_end(key)  # kept until its lock ends
        else:
            del entries[key]


class RateLimit:
    """At most `limit` events per `window_s` per key (a sliding window)."""

    def __init__(self, limit: int, window_s: float, clock: Clock = time.monotonic) -> None:
        self.limit = limit
        self._window = window_s
        self._clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._events)

    def allow(self, key: str) -> bool:
        now = self._clock()
        since = now - self._window
        events = self._events.setdefault(key, deque())
        self._events.move_to_end(key)
        while events and events[0] <= since:
            events.popleft()
        allowed = len(events) < self.limit
        if allowed:
            events.append(now)
        _forget(self._events, lambda kept: not kept or kept[-1] <= since)
        return allowed


@dataclass(slots=True)
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0

    def stale(self, now: float) -> bool:
        """Nothing to hold any more: no lock, and the last failure is a day old."""
        return self.locked_until <= now and self.last <= now - FORGET_AFTER_S


@dataclass
class SignInGuard:
    """Sign-in attempts limited per client address, and wrong passwords counted per
    account and address: five in a row lock that account for that address only, for a
    minute, then twice as long after each further one (up to an hour). Whoever guesses
    elsewhere cannot lock an account out where its owner signs in."""

    clock: Clock = time.monotonic
    per_address: RateLimit = field(init=False)
    _failures: OrderedDict[tuple[str, str], _Failures] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self.per_address = RateLimit(20, 60.0, self.clock)

    def __len__(self) -> int:
        return len(self._failures)

    def locked(self, username: str, address: str) -> bool:
        failures = self._failures.get((username, address))
        return failures is not None and failures.locked_until > self.clock()

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        failures = self._failures.setdefault((username, address), _Failures())
        self._failures.move_to_end((username, address))
        if failures.stale(now):
            failures.count = 0
        failures.count += 1
        failures.last = now
        beyond = failures.count - LOCK_AFTER_FAILURES
        if beyond >= 0:
            failures.locked_until = now + min(FIRST_LOCK_S * 2 ** min(beyond, 32), LONGEST_LOCK_S)
        _forget(self._failures, lambda f: f.stale(now), lambda f: f.locked_until > now)

    def succeeded(self, username: str, address: str) -> None:
        self._failures.pop((username, address), None)

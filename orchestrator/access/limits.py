"""Per-principal bounds kept in one front door's memory: calls in flight, a token
bucket per principal (every role has one), and open streams. Pure bookkeeping, time
passed in.

Each principal has one `Account`, made at its first call and kept: every connection
of the principal (a terminal reconnecting, a business system with several channels)
draws on the same bucket and counts in the same bounds. The accounts are as many as
the principals of the config, since a call is only counted once its caller is one."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.principals import Limits, Principal, Role


def _rate_of(limits: Limits, role: Role) -> tuple[float, int]:
    if role is Role.TERMINAL:
        return limits.terminal_rate, limits.terminal_burst
    if role is Role.BUSINESS:
        return limits.business_rate, limits.business_burst
    return limits.other_rate, limits.other_burst


@dataclass(slots=True, eq=False)
class Account:
    """One principal's bucket and counts, with its role's bounds read once."""

    rate: float  # calls per second, sustained
    burst: int
    max_calls: int
    max_streams: int
    tokens: float
    at: float | None = None  # when the bucket was last filled; None: never used
    calls: int = 0
    streams: int = 0

    def rate_ok(self, now: float) -> bool:
        """Take one token from the bucket."""
        if self.at is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def enter(self, *, stream: bool) -> str | None:
        """Count a call (and a stream) in; the reason when a bound is reached."""
        if self.calls >= self.max_calls:
            return f"more than {self.max_calls} calls in flight"
        if stream and self.streams >= self.max_streams:
            return f"more than {self.max_streams} streams open"
        self.calls += 1
        if stream:
            self.streams += 1
        return None

    def leave(self, *, stream: bool) -> None:
        self.calls -= 1
        if stream:
            self.streams -= 1


class Gate:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._accounts: dict[str, Account] = {}

    def account(self, principal: Principal) -> Account:
        """The principal's account, the same for all its connections."""
        account = self._accounts.get(principal.name)
        if account is None:
            limits = self.limits
            rate, burst = _rate_of(limits, principal.role)
            max_calls = (
                limits.terminal_calls if principal.role is Role.TERMINAL else limits.other_calls
            )
            account = self._accounts[principal.name] = Account(
                rate, burst, max_calls, limits.streams, float(burst)
            )
        return account

    def rate_of(self, principal: Principal) -> tuple[float, int]:
        """Calls per second, sustained, and the burst: every role has its bucket."""
        return _rate_of(self.limits, principal.role)

    def rate_ok(self, principal: Principal, now: float) -> bool:
        return self.account(principal).rate_ok(now)

    def enter(self, principal: Principal, *, stream: bool) -> str | None:
        return self.account(principal).enter(stream=stream)

    def leave(self, principal: Principal, *, stream: bool) -> None:
        self.account(principal).leave(stream=stream)

    def in_flight(self, name: str) -> tuple[int, int]:
        account = self._accounts.get(name)
        return (0, 0) if account is None else (account.calls, account.streams)

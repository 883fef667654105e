"""What a headless run ends with: per name the count, failures and percentiles Locust
measured, the front door's own view of the same window next to it, and the verdict
against the scenario's thresholds."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.serverview import Histogram


@dataclass(frozen=True)
class Measured:
    """One name's calls as Locust recorded them (milliseconds)."""

    name: str
    count: int
    failures: int
    p50: float
    p95: float
    p99: float

    @property
    def method(self) -> str:
        """The gRPC method: `Pay (payer confirming)` is a Pay."""
        return self.name.split(" (", 1)[0]


def measured(entries: Iterable[Any]) -> list[Measured]:
    """From Locust's StatsEntry objects (environment.stats.entries.values())."""
    rows = [
        Measured(
            e.name,
            e.num_requests,
            e.num_failures,
            e.get_response_time_percentile(0.5) or 0.0,
            e.get_response_time_percentile(0.95) or 0.0,
            e.get_response_time_percentile(0.99) or 0.0,
        )
        for e in entries
        if e.num_requests or e.num_failures
    ]
    return sorted(rows, key=lambda r: (r.method, r.name))


def limits(defaults: Mapping[str, float], overrides: Sequence[str]) -> dict[str, float]:
    """The scenario's p99 limits with `--max-p99-ms` applied: `MS` sets the limit of every
    name without one of its own ("*"), `NAME=MS` the limit of one name."""
    merged = dict(defaults)
    for override in overrides:
        name, _, value = override.rpartition("=")
        try:
            merged[name or "*"] = float(value)
        except ValueError:
            raise SystemExit(f"--max-p99-ms {override!r}: expected MS or NAME=MS") from None
    return merged


def verdict(
    rows: Sequence[Measured], p99_ms: Mapping[str, float], max_failure_ratio: float
) -> list[str]:
    """Every threshold the run passed; empty when it kept them all."""
    problems = []
    calls = sum(r.count for r in rows)
    failures = sum(r.failures for r in rows)
    ratio = failures / calls if calls else 0.0
    if ratio > max_failure_ratio:
        problems.append(f"failure ratio {ratio:.3f} > {max_failure_ratio:g}")
    for row in rows:
        limit = p99_ms.get(row.name, p99_ms["*"])
        if row.p99 > limit:
            problems.append(f"{row.name} p99 {row.p99:.0f} ms > {limit:g} ms")
    return problems


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def table(rows: Sequence[Measured], server: Mapping[str, Histogram] | None) -> str:
    """Locust's figures per name, with the front door's histogram per method beside the
    first name of that method (its p50/p95/p99 interpolated within buckets, as PromQL's
    histogram_quantile does)."""
    head = (
        f"{'name':<30} {'calls':>6} {'fails':>5} {'p50':>7} {'p95':>7} {'p99':>7}"
        f" | {'front door':<12} {'calls':>6} {'p50':>7} {'p95':>7} {'p99':>7}"
    )
    lines = ["Locust (ms)".ljust(len(head.split("|")[0])) + "| server /metrics (ms)", head]
    shown: set[str] = set()
    for row in rows:
        left = (
            f"{row.name:<30} {row.count:>6} {row.failures:>5} "
            f"{row.p50:>7.0f} {row.p95:>7.0f} {row.p99:>7.0f}"
        )
        right = ""
        if server is None:
            right = "(not scraped)" if not shown else ""
            shown.add(row.method)
        elif row.method not in shown:
            shown.add(row.method)
            seen = server.get(row.method)
            if seen is None:
                right = f"{row.method:<12} {'0':>6}"
            else:
                right = (
                    f"{row.method:<12} {seen.count:>6} {_ms(seen.quantile(0.5)):>7} "
                    f"{_ms(seen.quantile(0.95)):>7} {_ms(seen.quantile(0.99)):>7}"
                )
        lines.append(f"{left} | {right}".rstrip())
    if server is not None:
        for method in sorted(set(server) - shown):
            seen = server[method]
            lines.append(
                f"{'':<30} {'':>6} {'':>5} {'':>7} {'':>7} {'':>7} | {method:<12} "
                f"{seen.count:>6} {_ms(seen.quantile(0.5)):>7} "
                f"{_ms(seen.quantile(0.95)):>7} {_ms(seen.quantile(0.99)):>7}"
            )
    return "\n".join(lines)

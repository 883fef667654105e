"""Whether Locust and the front door tell the same story about a run: Locust's p50 of
each method within the front door's p50 bucket give or take a few milliseconds, its p99
within a small factor of the front door's p99 bucket (docs/LOADTESTS.md explains the
gap). A benchmark target (loadtest/bench.py), not a test: it depends on the machine.

The Locust run itself is started with `locust_command`, the same way the benchmark and
the e2e smoke runs start it."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.serverview import Histogram

P50_SLACK_MS = 8.0  # "within a few milliseconds": wire, client, both event loops
P99_FACTOR = 3.0  # "within a small factor"
METHODS = ("CreateOrder", "Pay")
MIN_CALLS = 50  # fewer, and a p99 means little
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"


def locust_command(data_dir: Path, csv_prefix: Path, *options: str) -> list[str]:
    """A headless Locust run of windowpay's scenarios against the deployment whose
    run.json is in `data_dir`, its figures under `csv_prefix`."""
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "--csv", str(csv_prefix), "--data-dir", str(data_dir), *options,
    ]  # fmt: skip


def locust_percentile(entries: Iterable[Mapping[str, Any]], method: str, q: float) -> float:
    """The q-percentile of what Locust recorded (its response times, rounded as Locust
    keeps them, from its --json-file) over every name of one method: Pay and its held
    names together, as the front door counts them. Not imported from Locust: importing
    it monkey-patches."""
    times = sorted(
        float(ms)
        for entry in entries
        if str(entry["name"]).split(" (", 1)[0] == method
        for ms, n in entry["response_times"].items()
        for _ in range(int(n))
    )
    if not times:
        return math.nan
    return times[max(math.ceil(q * len(times)) - 1, 0)]


@dataclass(frozen=True)
class Agreement:
    """One method's figures on both sides; `problems` is empty when they agree."""

    method: str
    calls: int
    locust_p50_ms: float
    locust_p99_ms: float
    door_p50_ms: tuple[float, float]  # the bucket, (lower, upper]
    door_p99_ms: tuple[float, float]

    @property
    def problems(self) -> list[str]:
        found = []
        if self.calls < MIN_CALLS:
            found.append(f"{self.method}: {self.calls} calls, too few to compare")
            return found
        (low50, high50), (low99, high99) = self.door_p50_ms, self.door_p99_ms
        if not low50 - P50_SLACK_MS <= self.locust_p50_ms <= high50 + P50_SLACK_MS:
            found.append(f"p50 {self}")
        if not low99 / P99_FACTOR <= self.locust_p99_ms <= high99 * P99_FACTOR:
            found.append(f"p99 {self}")
        return found

    def __str__(self) -> str:
        (low50, high50), (low99, high99) = self.door_p50_ms, self.door_p99_ms
        return (
            f"{self.method}: {self.calls} calls; Locust p50 {self.locust_p50_ms:.0f} ms, front "
            f"door p50 in ({low50:g}, {high50:g}] ms; Locust p99 {self.locust_p99_ms:.0f} ms, "
            f"front door p99 in ({low99:g}, {high99:g}] ms"
        )


def compare(
    server: Mapping[str, Histogram], entries: Iterable[Mapping[str, Any]]
) -> list[Agreement]:
    """Each method's agreement, from the front door's histograms over the run (serverview
    .window) and Locust's --json-file entries."""
    entries = list(entries)
    found = []
    for method in METHODS:
        seen = server.get(method, Histogram(()))
        p50, p99 = (seen.quantile_bounds(q) for q in (0.5, 0.99))
        found.append(
            Agreement(
                method,
                seen.count,
                locust_percentile(entries, method, 0.5),
                locust_percentile(entries, method, 0.99),
                (p50[0] * 1000, p50[1] * 1000),
                (p99[0] * 1000, p99[1] * 1000),
            )
        )
    return found

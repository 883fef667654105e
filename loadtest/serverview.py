"""The front door's own view of a load run: its `windowpay_grpc_request_duration_seconds`
histogram, scraped from /metrics before and after the run, so that only the run's
calls are counted.

The front door is found the way Prometheus finds it: in the scrape-target list that
every windowpay process keeps in Redis (`windowpay-frontdoor`, labelled with the gRPC
address it serves).
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

import redis
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.store.keys import METRICS_TARGETS

HISTOGRAM = "windowpay_grpc_request_duration_seconds"


def metrics_address(redis_url: str, grpc_target: str) -> str | None:
    """host:port of the /metrics of the front door serving `grpc_target`, if announced."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        members = client.zrangebyscore(METRICS_TARGETS, time.time(), "+inf")
    finally:
        client.close()
    for raw in members:  # type: ignore[union-attr]
        target = json.loads(raw)
        if target["job"] == "windowpay-frontdoor" and target["labels"].get("grpc") == grpc_target:
            return str(target["address"])
    return None


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts of one method: upper bound (s) -> calls at or under it."""

    buckets: tuple[tuple[float, float], ...]

    @property
    def count(self) -> int:
        return int(self.buckets[-1][1]) if self.buckets else 0

    def minus(self, earlier: Histogram | None) -> Histogram:
        if earlier is None:
            return self
        before = dict(earlier.buckets)
        return Histogram(tuple((le, n - before.get(le, 0.0)) for le, n in self.buckets))

    def quantile_bounds(self, q: float) -> tuple[float, float]:
        """The bucket the q-quantile falls in, as (lower, upper) bounds in seconds: the
        server knows its latencies only to its buckets' resolution."""
        if not self.count:
            return (math.nan, math.nan)
        rank = q * self.count
        lower = 0.0
        for le, cumulative in self.buckets:
            if cumulative >= rank:
                return (lower, le)
            lower = le
        return (lower, math.inf)

    def quantile(self, q: float) -> float:
        """Linear interpolation inside the bucket, as PromQL's histogram_quantile does."""
        if not self.count:
            return math.nan
        rank = q * self.count
        lower, below = 0.0, 0.0
        for le, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(le):
                    return lower
                inside = cumulative - below
                return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = le, cumulative
        return lower


def parse(text: str) -> dict[str, Histogram]:
    """method -> its histogram, from a Prometheus text exposition."""
    raw: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != HISTOGRAM:
            continue
        for sample in family.samples:
            if sample.name == f"{HISTOGRAM}_bucket":
                method = sample.labels["method"]
                le = float(sample.labels["le"])
                raw.setdefault(method, {})[le] = raw.get(method, {}).get(le, 0.0) + sample.value
    return {m: Histogram(tuple(sorted(b.items()))) for m, b in raw.items()}


def scrape(address: str) -> dict[str, Histogram]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        return parse(response.read().decode())


def window(before: Mapping[str, Histogram], after: Mapping[str, Histogram]) -> dict[str, Histogram]:
    """The calls each method answered between two scrapes."""
    return {m: h.minus(before.get(m)) for m, h in after.items() if h.minus(before.get(m)).count}

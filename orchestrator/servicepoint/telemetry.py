"""The service point's state as Prometheus reads it at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from orchestrator.servicepoint.core import ServicePointCore


class InFlightCollector(Collector):
    def __init__(self, core: ServicePointCore) -> None:
        self._core = core

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_flight = GaugeMetricFamily(
            "windowpay_attempts_in_flight",
            "Payment attempts not yet final.",
            labels=["service_point"],
        )
        oldest = GaugeMetricFamily(
            "windowpay_oldest_attempt_age_seconds",
            "Age of the oldest attempt not yet final (0 when none).",
            labels=["service_point"],
        )
        stuck = GaugeMetricFamily(
            "windowpay_attempts_past_deadline",
            "Attempts not final although their channel's playbook says they should be.",
            labels=["service_point"],
        )
        missing = GaugeMetricFamily(
            "windowpay_live_orders_missing",
            "Open orders whose snapshot Redis had lost, not yet reloaded from the record.",
            labels=["service_point"],
        )
        for sp, (count, age, late) in self._core.in_flight().items():
            in_flight.add_metric([sp], count)
            oldest.add_metric([sp], age)
            stuck.add_metric([sp], late)
        for sp, lost in self._core.missing_orders().items():
            missing.add_metric([sp], lost)
        yield in_flight
        yield oldest
        yield stuck
        yield missing

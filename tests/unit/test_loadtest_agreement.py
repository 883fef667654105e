"""The benchmark's comparison of Locust with the front door (loadtest/agreement.py): the
percentile it takes of Locust's recorded times, and when it calls the two views apart."""

from __future__ import annotations

import math

from loadtest.agreement import Agreement, compare, locust_percentile
from loadtest.serverview import Histogram

# Locust's --json-file keeps each name's response times as {rounded ms: count}.
ENTRIES = [
    {"name": "CreateOrder", "response_times": {"10": 60, "20": 39, "900": 1}},
    {"name": "Pay", "response_times": {"12": 50}},
    {"name": "Pay (payer confirming)", "response_times": {"8000": 50}},
]


def test_the_percentile_counts_every_name_of_a_method() -> None:
    assert locust_percentile(ENTRIES, "CreateOrder", 0.5) == 10
    assert locust_percentile(ENTRIES, "CreateOrder", 0.99) == 20
    assert locust_percentile(ENTRIES, "CreateOrder", 1.0) == 900
    assert locust_percentile(ENTRIES, "Pay", 0.5) == 12  # held payments count too
    assert locust_percentile(ENTRIES, "Pay", 0.51) == 8000
    assert math.isnan(locust_percentile(ENTRIES, "GetOrder", 0.5))


def agreement(p50: float, p99: float, calls: int = 100) -> Agreement:
    return Agreement("CreateOrder", calls, p50, p99, (5.0, 10.0), (100.0, 250.0))


def test_within_the_slack_and_the_factor_they_agree() -> None:
    for p50, p99 in ((10, 250), (18, 750), (0, 34)):
        assert agreement(p50, p99).problems == []


def test_a_p50_beyond_the_slack_or_a_p99_beyond_the_factor_disagrees() -> None:
    figures = "CreateOrder: 100 calls; Locust p50 19 ms, front door p50 in (5, 10] ms"
    assert agreement(19, 200).problems == [
        f"p50 {figures}; Locust p99 200 ms, front door p99 in (100, 250] ms"
    ]
    assert [p.split(" ")[0] for p in agreement(10, 751).problems] == ["p99"]
    assert [p.split(" ")[0] for p in agreement(10, 33).problems] == ["p99"]


def test_too_few_calls_are_no_comparison() -> None:
    assert agreement(10, 200, calls=49).problems == ["CreateOrder: 49 calls, too few to compare"]


def test_compare_takes_the_front_doors_buckets_in_milliseconds() -> None:
    server = {"CreateOrder": Histogram(((0.005, 10.0), (0.01, 90.0), (0.25, 100.0)))}
    create, pay = compare(server, ENTRIES)
    assert (create.calls, create.door_p50_ms, create.door_p99_ms) == (
        100,
        (5.0, 10.0),
        (10.0, 250.0),
    )
    assert (create.locust_p50_ms, create.locust_p99_ms) == (10, 20)
    assert pay.calls == 0 and pay.problems == ["Pay: 0 calls, too few to compare"]

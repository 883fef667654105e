"""The load run's report: the front door's histogram read from /metrics text, narrowed to
the run's window, its quantiles; and the verdict per name against the thresholds."""

from __future__ import annotations

import math

import pytest

from loadtest.report import Measured, limits, table, verdict
from loadtest.scenarios import pay_name, registry
from loadtest.serverview import Histogram, parse, window

EXPOSITION = """\
# HELP windowpay_grpc_request_duration_seconds Time to answer a gRPC call.
# TYPE windowpay_grpc_request_duration_seconds histogram
windowpay_grpc_request_duration_seconds_bucket{le="0.005",method="CreateOrder",service="B"} %d
windowpay_grpc_request_duration_seconds_bucket{le="0.01",method="CreateOrder",service="B"} %d
windowpay_grpc_request_duration_seconds_bucket{le="0.1",method="CreateOrder",service="B"} %d
windowpay_grpc_request_duration_seconds_bucket{le="+Inf",method="CreateOrder",service="B"} %d
windowpay_grpc_request_duration_seconds_count{method="CreateOrder",service="B"} %d
windowpay_grpc_request_duration_seconds_sum{method="CreateOrder",service="B"} 1.0
windowpay_grpc_request_duration_seconds_bucket{le="0.005",method="GetOrder",service="Terminal"} 7
windowpay_grpc_request_duration_seconds_bucket{le="0.01",method="GetOrder",service="Terminal"} 7
windowpay_grpc_request_duration_seconds_bucket{le="0.1",method="GetOrder",service="Terminal"} 7
windowpay_grpc_request_duration_seconds_bucket{le="+Inf",method="GetOrder",service="Terminal"} 7
windowpay_grpc_request_duration_seconds_count{method="GetOrder",service="Terminal"} 7
windowpay_grpc_request_duration_seconds_sum{method="GetOrder",service="Terminal"} 0.01
# HELP windowpay_actor_call_duration_seconds other
# TYPE windowpay_actor_call_duration_seconds histogram
windowpay_actor_call_duration_seconds_bucket{le="+Inf"} 99
windowpay_actor_call_duration_seconds_count 99
windowpay_actor_call_duration_seconds_sum 1.0
"""


def exposition(under_5ms: int, under_10ms: int, under_100ms: int, total: int) -> str:
    return EXPOSITION % (under_5ms, under_10ms, under_100ms, total, total)


def test_only_the_calls_answered_between_two_scrapes_are_counted() -> None:
    before = parse(exposition(10, 10, 10, 10))
    after = parse(exposition(10, 90, 109, 110))
    during = window(before, after)
    assert set(during) == {"CreateOrder"}  # GetOrder answered nothing in between
    assert during["CreateOrder"].buckets == (
        (0.005, 0.0),
        (0.01, 80.0),
        (0.1, 99.0),
        (math.inf, 100.0),
    )
    assert during["CreateOrder"].count == 100


def test_a_quantile_is_known_to_its_bucket_and_interpolated_inside_it() -> None:
    calls = Histogram(((0.005, 0.0), (0.01, 80.0), (0.1, 99.0), (math.inf, 100.0)))
    assert calls.quantile_bounds(0.5) == (0.005, 0.01)
    assert calls.quantile(0.5) == pytest.approx(0.005 + 0.005 * 50 / 80)
    assert calls.quantile_bounds(0.95) == (0.01, 0.1)
    assert calls.quantile(0.95) == pytest.approx(0.01 + 0.09 * 15 / 19)
    assert calls.quantile_bounds(0.999) == (0.1, math.inf)
    assert calls.quantile(0.999) == 0.1  # beyond the last bound: only "over 100 ms" is known
    empty = Histogram(((0.005, 0.0), (math.inf, 0.0)))
    assert math.isnan(empty.quantile(0.5)) and math.isnan(empty.quantile_bounds(0.5)[0])


def row(name: str, p99: float, count: int = 100, failures: int = 0) -> Measured:
    return Measured(name, count, failures, p50=p99 / 10, p95=p99 / 2, p99=p99)


def test_held_pay_calls_are_named_by_what_holds_them() -> None:
    assert pay_name("0000") == "Pay"
    assert pay_name("3333") == "Pay"  # a decline answers at once
    assert pay_name("1111") == "Pay (payer confirming)"
    assert pay_name("2222") == "Pay (payer never confirms)"
    assert pay_name("5555") == "Pay (provider hangs)"
    assert row("Pay (payer confirming)", 1).method == "Pay"


def test_each_name_is_held_to_its_own_p99_limit() -> None:
    slow_payers = registry()["slow_payers"]
    # A payer confirming for 10 s is within its limit; it does not drag Pay's p99 along.
    held = [row("CreateOrder", 40), row("Pay", 60), row("Pay (payer confirming)", 10_000)]
    assert verdict(held, slow_payers.p99_ms, 0.01) == []
    # An instant Pay at 2.5 s is not.
    slow = [row("CreateOrder", 40), row("Pay", 2_500), row("Pay (payer confirming)", 10_000)]
    assert verdict(slow, slow_payers.p99_ms, 0.01) == ["Pay p99 2500 ms > 2000 ms"]
    never = [row("Pay (payer never confirms)", 95_000)]
    assert verdict(never, slow_payers.p99_ms, 0.01) == [
        "Pay (payer never confirms) p99 95000 ms > 90000 ms"
    ]


def test_the_failure_ratio_counts_every_call_of_the_run() -> None:
    rows = [row("CreateOrder", 10, count=150, failures=1), row("Pay", 10, count=50, failures=2)]
    assert verdict(rows, {"*": 1_000}, 0.02) == []  # 3 of 200
    assert verdict(rows, {"*": 1_000}, 0.01) == ["failure ratio 0.015 > 0.01"]


def test_p99_limits_are_overridden_for_every_name_or_one() -> None:
    scenario = {"*": 2_000.0, "Pay (payer confirming)": 30_000.0}
    assert limits(scenario, []) == scenario
    assert limits(scenario, ["500"]) == {"*": 500.0, "Pay (payer confirming)": 30_000.0}
    assert limits(scenario, ["Pay (payer confirming)=12000", "800"]) == {
        "*": 800.0,
        "Pay (payer confirming)": 12_000.0,
    }
    with pytest.raises(SystemExit, match="expected MS or NAME=MS"):
        limits(scenario, ["Pay=fast"])


def test_the_table_puts_the_front_doors_view_beside_each_method() -> None:
    server = window(parse(exposition(0, 0, 0, 0)), parse(exposition(0, 80, 99, 100)))
    rows = [row("CreateOrder", 90), row("Pay", 20), row("Pay (payer confirming)", 9_000)]
    lines = table(rows, server).splitlines()
    create = next(line for line in lines if line.startswith("CreateOrder"))
    assert create.split("|")[1].split() == ["CreateOrder", "100", "8.1", "81.1", "100.0"]
    pay = next(line for line in lines if line.startswith("Pay "))
    assert pay.split("|")[1].split() == ["Pay", "0"]  # the front door answered no Pay
    held = next(line for line in lines if line.startswith("Pay (payer"))
    assert held.rstrip().endswith("|")  # its server figures are Pay's, shown once
    assert "(not scraped)" in table(rows, None)

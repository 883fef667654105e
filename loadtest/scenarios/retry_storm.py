"""Flaky terminals: every request is sent two or three times, some copies at once. The
effect must happen once and every copy must get the same answer."""

from loadtest.scenarios import Scenario, Stage

SCENARIO = Scenario(
    name="retry_storm",
    description="each request sent two or three times, some concurrently",
    stages=(Stage(20, 30, 10), Stage(120, 30, 10)),
    think_s=(0.2, 1.0),
    p_retry=1.0,
    p_concurrent=0.5,
    max_failure_ratio=0.01,
    p99_ms={"*": 3_000, "Pay (payer confirming)": 30_000},
)

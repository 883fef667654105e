"""Doors open at 08:30 with a queue outside: every window at once, short gaps."""

from loadtest.scenarios import Scenario, Stage

SCENARIO = Scenario(
    name="morning_rush",
    description="every window starts at once and keeps paying with little pause",
    stages=(Stage(20, 45, 45), Stage(120, 45, 45), Stage(150, 10, 10)),
    think_s=(0.1, 0.5),
    p_watch=0.3,
    max_failure_ratio=0.01,
    p99_ms={"*": 3_000, "Pay (payer confirming)": 30_000},
)

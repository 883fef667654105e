"""A city's day compressed: the 45 windows busy through the morning, a lull at noon,
the afternoon, then closing."""

from loadtest.scenarios import Scenario, Stage

SCENARIO = Scenario(
    name="steady_day",
    description="45 windows through a compressed day, realistic channel and fee mix",
    stages=(
        Stage(60, 30, 2),  # 08:30 doors open
        Stage(180, 45, 2),  # the morning, every window busy
        Stage(240, 15, 5),  # lunch
        Stage(420, 40, 2),  # the afternoon
        Stage(480, 5, 5),  # closing
    ),
    think_s=(1.0, 4.0),
    max_failure_ratio=0.01,
    p99_ms={"*": 2_000, "Pay (payer confirming)": 30_000},
)

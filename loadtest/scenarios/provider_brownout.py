"""A provider in trouble: system errors that still paid (4444), pay calls that hang past
the timeout (5555), and 5xx on every pay call (6666). Payers whose payment fails pay
again by another channel."""

from loadtest.scenarios import Scenario, Stage

SCENARIO = Scenario(
    name="provider_brownout",
    description="codes ending 4444, 5555 and 6666 among normal payments",
    stages=(Stage(30, 20, 5), Stage(180, 20, 5)),
    endings={"0000": 55, "4444": 15, "5555": 15, "6666": 15},
    think_s=(0.5, 1.5),
    max_failure_ratio=0.02,
    p99_ms={
        "*": 2_000,
        "Pay (provider system error)": 60_000,  # the documented wait, then the query
        "Pay (provider hangs)": 120_000,  # the pay call's timeout, then the query
        "Pay (provider down)": 60_000,  # the documented retries, then the query
    },
)

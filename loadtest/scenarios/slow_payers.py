"""Payers who take their time typing the password (1111) or never confirm (2222): Pay
answers PAYING or waits, the engine polls, then reverses the ones who never confirm."""

from loadtest.scenarios import Scenario, Stage

SCENARIO = Scenario(
    name="slow_payers",
    description="codes ending 1111 (confirms after ~8 s) and 2222 (never confirms)",
    stages=(Stage(30, 20, 5), Stage(180, 20, 5)),
    channels={"wechat": 60, "alipay": 40},
    endings={"1111": 60, "2222": 25, "0000": 15},
    think_s=(0.5, 1.5),
    max_failure_ratio=0.01,
    # Pay waits for the payer up to the server's hold (60 s by default), then answers
    p99_ms={"*": 2_000, "Pay (payer confirming)": 30_000, "Pay (payer never confirms)": 90_000},
)

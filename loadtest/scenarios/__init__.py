"""Load scenarios: who pays how, how the load rises and falls, and when a run fails.

Each scenario is selected by name (`--scenario steady_day`); the name is also its tag.
Stage durations are in seconds; `--time-scale 0.1` runs every stage ten times shorter.

A Pay whose payer or provider keeps it waiting on purpose (DOMAIN.md §6) is reported
under its own name, so that its seconds of waiting never mix with instant payments in
one p99, and each name has its own p99 limit (`p99_ms`, "*" for every other name).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Pay calls held by the sandbox's behaviour, by auth-code ending, and their names.
HELD_PAY = {
    "1111": "Pay (payer confirming)",
    "2222": "Pay (payer never confirms)",
    "8888": "Pay (payer never confirms)",
    "4444": "Pay (provider system error)",
    "5555": "Pay (provider hangs)",
    "6666": "Pay (provider down)",
    "7777": "Pay (slow query)",
}


def pay_name(ending: str) -> str:
    """The name a Pay with this auth-code ending is reported under."""
    return HELD_PAY.get(ending, "Pay")


@dataclass(frozen=True)
class Stage:
    until_s: float  # the stage ends this long after the start
    users: int
    spawn_rate: float


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    stages: tuple[Stage, ...]
    # channel -> weight; auth-code ending -> weight (docs/DOMAIN.md §7 behaviours)
    channels: dict[str, float] = field(
        default_factory=lambda: {"wechat": 55, "alipay": 30, "unionpay": 10, "cash": 5}
    )
    endings: dict[str, float] = field(default_factory=lambda: {"0000": 90, "1111": 10})
    think_s: tuple[float, float] = (0.5, 2.0)  # between cases at a window
    p_watch: float = 0.5  # the terminal follows the window before the scan
    p_cancel: float = 0.03  # the case is withdrawn before payment
    p_retry: float = 0.05  # the terminal sends Pay again with the same request id
    p_concurrent: float = 0.0  # ...several copies at once
    max_failure_ratio: float = 0.01  # over all calls of the run
    # name -> p99 limit in ms; "*" for every name not listed
    p99_ms: dict[str, float] = field(default_factory=lambda: {"*": 2_000.0})

    def p99_limit(self, name: str) -> float:
        return self.p99_ms.get(name, self.p99_ms["*"])


# A vehicle office's day: plates, licences, exams (docs/DOMAIN.md §3), roughly as often
# as they come to the windows.
FEE_MIX: list[tuple[list[tuple[str, int]], float]] = [
    ([("PLT-AUTO", 1), ("DOC-VLIC", 1), ("DOC-REG", 1)], 25),  # a new car registered
    ([("DOC-DLIC", 1)], 25),  # licence renewed or replaced
    ([("EXM-K1", 1)], 15),
    ([("EXM-K2-CAR", 1)], 10),
    ([("EXM-K3-CAR", 1), ("EXM-K3-SAFE", 1)], 10),
    ([("PLT-TEMP", 2)], 8),
    ([("PLT-MOTO", 1), ("DOC-VLIC", 1)], 5),
    ([("DOC-TEMP-DRIVE", 1)], 2),
]


def registry() -> dict[str, Scenario]:
    from loadtest.scenarios import (
        morning_rush,
        provider_brownout,
        retry_storm,
        slow_payers,
        steady_day,
    )

    scenarios = [
        steady_day.SCENARIO,
        morning_rush.SCENARIO,
        slow_payers.SCENARIO,
        retry_storm.SCENARIO,
        provider_brownout.SCENARIO,
    ]
    return {s.name: s for s in scenarios}

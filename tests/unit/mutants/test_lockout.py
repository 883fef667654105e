"""What PinLockout hands its Redis scripts and how it reads their answers, written for the
mutants of store/lockout.py that `make mutate` found alive. The scripts themselves run
against a real Redis in tests/integration/test_pin_lockout.py; here a recording stand-in
answers as a script would."""

from __future__ import annotations

from typing import Any

from orchestrator.store import keys
from orchestrator.store.lockout import _BEGIN, _RIGHT, _WRONG, Admission, Begun, PinLockout


class RecordingRedis:
    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.calls: list[tuple[str, list[str], list[Any]]] = []
        self.ttl = -2

    def register_script(self, source: str) -> Any:
        name = {_BEGIN: "begin", _WRONG: "wrong", _RIGHT: "right"}[source]

        async def run(*, keys: list[str], args: list[Any]) -> Any:
            self.calls.append((name, keys, args))
            return self.answers.get(name)

        return run

    async def pttl(self, key: str) -> int:
        self.calls.append(("pttl", [key], []))
        return self.ttl


def lockout(redis: RecordingRedis, **kw: Any) -> PinLockout:
    settings: dict[str, Any] = {"attempts": 5, "window_s": 900, "lockout_s": 600} | kw
    return PinLockout(redis, **settings)  # type: ignore[arg-type]


async def test_begin_passes_the_keys_and_limits_in_the_scripts_order() -> None:
    redis = RecordingRedis()
    redis.answers["begin"] = [b"go", 3]
    pins = lockout(redis, terminal_attempts=3, window_s=1.5, lockout_s=0.25)
    assert await pins.begin("SUP01", "E1T1") == Begun(Admission.GO, 0.0)
    assert redis.calls == [
        (
            "begin",
            [keys.pin_lock("SUP01"), keys.pin_failures("SUP01"), keys.pin_terminal("E1T1")],
            [5, 1500, 250, 3],
        )
    ]


async def test_the_terminal_limit_defaults_to_the_supervisors_and_times_are_at_least_1_ms() -> None:
    redis = RecordingRedis()
    redis.answers["begin"] = ["go", 1]
    await lockout(redis, attempts=4, window_s=0.0001, lockout_s=0).begin("S", "T")
    assert redis.calls[0][2] == [4, 1, 1, 4]


async def test_refusals_say_how_long_they_last() -> None:
    redis = RecordingRedis()
    pins = lockout(redis)
    for answer, begun in (
        ([b"locked", 899_500], Begun(Admission.LOCKED, 899.5)),
        ([b"locked", -1], Begun(Admission.LOCKED, 0.0)),
        (["terminal", 1234], Begun(Admission.TERMINAL, 1.234)),
        ([b"busy", 5], Begun(Admission.BUSY, 0.005)),
    ):
        redis.answers["begin"] = answer
        assert await pins.begin("SUP01", "E1T1") == begun


async def test_wrong_and_right_report_to_their_scripts() -> None:
    redis = RecordingRedis()
    pins = lockout(redis, lockout_s=2)
    redis.answers["wrong"] = 1
    assert await pins.wrong("SUP01") is True
    redis.answers["wrong"] = 0
    assert await pins.wrong("SUP01") is False
    assert await pins.right("SUP01", "E1T1") is None
    lock, failures = keys.pin_lock("SUP01"), keys.pin_failures("SUP01")
    wrong = keys.pin_wrong("SUP01")
    assert redis.calls == [
        ("wrong", [lock, failures, wrong], [5, 2000, 900_000]),
        ("wrong", [lock, failures, wrong], [5, 2000, 900_000]),
        ("right", [failures, keys.pin_terminal("E1T1")], []),
    ]


async def test_locked_for_reads_the_locks_time_to_live() -> None:
    redis = RecordingRedis()
    pins = lockout(redis, lockout_s=600)
    redis.ttl = 42_500
    assert await pins.locked_for("SUP01") == 42.5
    assert redis.calls == [("pttl", [keys.pin_lock("SUP01")], [])]
    redis.ttl = -2  # no lock
    assert await pins.locked_for("SUP01") == 0
    redis.ttl = -1  # a lock without expiry: as long as a whole lock
    assert await pins.locked_for("SUP01") == 600

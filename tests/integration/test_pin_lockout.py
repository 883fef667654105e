"""Supervisor PINs against a real Redis: the lockout's window and lock, time-scaled
(seconds for minutes), and the count that holds when calls arrive at once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from orchestrator.access.supervisors import Supervisors, Verdict, ensure_dev_pins
from orchestrator.domain.principals import AccessSettings
from orchestrator.store import keys
from orchestrator.store.lockout import Admission, PinLockout
from tests.support import small_config

WINDOW_S = 1.5  # the 15-minute window, scaled
LOCKOUT_S = 1.0  # the 15-minute lock, scaled


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8].upper()}"


def lockout(
    redis: Redis,
    terminal_attempts: int = 100,
    window_s: float = WINDOW_S,
    lockout_s: float = LOCKOUT_S,
) -> PinLockout:
    return PinLockout(
        redis, attempts=5, window_s=window_s, lockout_s=lockout_s,
        terminal_attempts=terminal_attempts,
    )  # fmt: skip


async def wrong_pin(pins: PinLockout, supervisor: str, terminal: str) -> bool:
    """One attempt with a wrong PIN: counted, then reported; True when it locks."""
    assert (await pins.begin(supervisor, terminal)).admission is Admission.GO
    return await pins.wrong(supervisor)


async def test_the_fifth_wrong_pin_in_the_window_locks_and_the_lock_expires(
    redis: Redis,
) -> None:
    pins, supervisor, terminal = lockout(redis), unique("S"), unique("T")
    assert [await wrong_pin(pins, supervisor, terminal) for _ in range(4)] == [False] * 4
    assert await pins.locked_for(supervisor) == 0
    assert await wrong_pin(pins, supervisor, terminal)  # the fifth locks, not a sixth
    assert 0 < await pins.locked_for(supervisor) <= LOCKOUT_S
    locked_at = time.monotonic()
    refused = await pins.begin(supervisor, terminal)
    assert refused.admission is Admission.LOCKED and 0 < refused.wait_s <= LOCKOUT_S
    # the lock lifts once its time is over, and not long before
    while (await pins.begin(supervisor, terminal)).admission is Admission.LOCKED:
        assert time.monotonic() - locked_at < LOCKOUT_S + 2, "the lock never expires"
        await asyncio.sleep(0.05)
    assert time.monotonic() - locked_at >= LOCKOUT_S * 0.8
    # after the lock, the count starts again (the attempt just made is the first)
    assert not await pins.wrong(supervisor)
    assert [await wrong_pin(pins, supervisor, terminal) for _ in range(3)] == [False] * 3
    assert await wrong_pin(pins, supervisor, terminal)


async def test_one_wrong_pin_among_right_ones_in_flight_does_not_lock(redis: Redis) -> None:
    """Five refunds approved at five windows at once, one clerk mistyping the PIN."""
    pins, supervisor = lockout(redis), unique("S")
    terminals = [unique("T") for _ in range(5)]
    begun = [await pins.begin(supervisor, terminal) for terminal in terminals]
    assert [b.admission for b in begun] == [Admission.GO] * 5
    assert not await pins.wrong(supervisor)
    for terminal in terminals[1:]:
        await pins.right(supervisor, terminal)
    assert await pins.locked_for(supervisor) == 0
    # Its wrong PIN still counts: four more lock.
    assert [await wrong_pin(pins, supervisor, unique("T")) for _ in range(4)] == [
        False, False, False, True,
    ]  # fmt: skip


async def test_wrong_pins_older_than_the_window_do_not_count(redis: Redis) -> None:
    pins, supervisor, terminal = lockout(redis), unique("S"), unique("T")
    for _ in range(4):
        assert not await wrong_pin(pins, supervisor, terminal)
    started = time.monotonic()
    while await redis.exists(keys.pin_failures(supervisor)):  # the window ends
        assert time.monotonic() - started < WINDOW_S + 2, "the window never ends"
        await asyncio.sleep(0.05)
    for _ in range(4):  # four more, in a new window: 8 in all, but not 5 in one window
        assert not await wrong_pin(pins, supervisor, terminal)
    assert await pins.locked_for(supervisor) == 0
    assert await wrong_pin(pins, supervisor, terminal)


async def test_a_right_pin_takes_back_only_its_own_attempt(redis: Redis) -> None:
    pins, supervisor, terminal = lockout(redis), unique("S"), unique("T")
    for _ in range(3):
        assert not await wrong_pin(pins, supervisor, terminal)
    assert (await pins.begin(supervisor, terminal)).admission is Admission.GO
    await pins.right(supervisor, terminal)
    assert not await wrong_pin(pins, supervisor, terminal)  # the 4th wrong one
    assert await wrong_pin(pins, supervisor, terminal)  # the 5th wrong one locks


async def test_a_terminal_has_its_own_limit_whatever_supervisor_it_names(redis: Redis) -> None:
    pins, terminal = lockout(redis, terminal_attempts=3), unique("T")
    first, second = unique("S"), unique("S")
    for _ in range(3):
        assert not await wrong_pin(pins, first, terminal)
    refused = await pins.begin(second, terminal)
    assert refused.admission is Admission.TERMINAL and 0 < refused.wait_s <= WINDOW_S
    assert not await redis.exists(keys.pin_failures(second))  # nothing counted for it
    # one terminal alone cannot lock the supervisor; a second terminal's attempts add up
    other = unique("T")
    assert not await wrong_pin(pins, first, other)
    assert await wrong_pin(pins, first, other)


# ---- the supervisors' check, with the real count -----------------------------------------


@pytest.fixture
def access_and_pins(tmp_path: Path) -> tuple[AccessSettings, dict[str, str]]:
    prefix = unique("P")[:5]
    access = small_config(prefix=prefix).access
    ensure_dev_pins(access, tmp_path)
    return access, json.loads((tmp_path / "supervisors.json").read_text())


def other_pin(pin: str, n: int = 0) -> str:
    guess = f"{(int(pin) + 1 + n) % 10**6:06d}"
    assert guess != pin
    return guess


async def test_sixteen_guesses_at_once_get_five_checks(
    redis: Redis, tmp_path: Path, access_and_pins: tuple[AccessSettings, dict[str, str]]
) -> None:
    access, dev_pins = access_and_pins
    supervisor = sorted(access.supervisors)[0]
    point = access.supervisors[supervisor]
    # a window and a lock long enough for five scrypt checks on a busy machine: the
    # five wrong PINs must all fall in the window to lock
    supervisors = Supervisors(access, tmp_path, lockout(redis, window_s=60, lockout_s=60))
    guesses = [other_pin(dev_pins[supervisor], n) for n in range(15)] + [dev_pins[supervisor]]
    decisions = await asyncio.gather(
        *(
            supervisors.approve(supervisor, guess, point, f"{point}T{n % 6 + 1}")
            for n, guess in enumerate(guesses)
        )
    )
    assert sum(d.checked for d in decisions) == 5
    assert {d.verdict for d in decisions if not d.checked} <= {Verdict.LOCKED, Verdict.BUSY}
    assert await redis.exists(keys.pin_lock(supervisor))


async def test_right_pins_at_once_never_lock_their_supervisor(
    redis: Redis, tmp_path: Path, access_and_pins: tuple[AccessSettings, dict[str, str]]
) -> None:
    """Six refunds approved at once at two windows: what the limit cannot check at once
    is refused as busy, and nothing is locked, since no PIN was wrong; the supervisor
    approves again at once."""
    access, dev_pins = access_and_pins
    supervisor = sorted(access.supervisors)[0]
    point = access.supervisors[supervisor]
    supervisors = Supervisors(access, tmp_path, lockout(redis, terminal_attempts=3))
    decisions = await asyncio.gather(
        *(
            supervisors.approve(supervisor, dev_pins[supervisor], point, f"{point}T{n % 2 + 1}")
            for n in range(6)
        )
    )
    assert sorted(d.verdict.value for d in decisions) == ["busy"] + ["ok"] * 5
    assert not await redis.exists(keys.pin_lock(supervisor))
    again = await supervisors.approve(supervisor, dev_pins[supervisor], point, f"{point}T3")
    assert again.verdict is Verdict.OK


async def test_a_terminal_of_another_point_can_neither_guess_nor_lock(
    redis: Redis, tmp_path: Path, access_and_pins: tuple[AccessSettings, dict[str, str]]
) -> None:
    access, dev_pins = access_and_pins
    mine, theirs = sorted(access.supervisors)[:2]
    my_point, their_point = access.supervisors[mine], access.supervisors[theirs]
    supervisors = Supervisors(access, tmp_path, lockout(redis))
    stranger = f"{my_point}T1"
    for n in range(10):  # naming the other point's supervisor at its own point
        decision = await supervisors.approve(
            theirs, other_pin(dev_pins[theirs], n), my_point, stranger
        )
        assert decision.verdict is Verdict.ELSEWHERE and not decision.checked
    assert not await redis.exists(keys.pin_failures(theirs))
    assert not await redis.exists(keys.pin_terminal(stranger))
    right = await supervisors.approve(theirs, dev_pins[theirs], their_point, f"{their_point}T1")
    assert right.verdict is Verdict.OK
    unknown = await supervisors.approve("NOBODY", dev_pins[mine], my_point, stranger)
    assert unknown.verdict is Verdict.UNKNOWN and not unknown.checked


async def test_a_redis_that_does_not_answer_refuses_without_checking(
    tmp_path: Path, access_and_pins: tuple[AccessSettings, dict[str, str]]
) -> None:
    access, dev_pins = access_and_pins
    supervisor = sorted(access.supervisors)[0]
    down = Redis(port=1, socket_connect_timeout=0.5)  # nothing listens on port 1
    try:
        supervisors = Supervisors(access, tmp_path, lockout(down))
        decision = await supervisors.approve(
            supervisor, dev_pins[supervisor], access.supervisors[supervisor], "T1"
        )
    finally:
        await down.aclose()
    assert decision.verdict is Verdict.UNAVAILABLE and not decision.checked

"""Fault 1: `kill -9` every service-point actor while payments of every channel and every
sandbox behaviour are in flight. Ray restarts each actor, which recovers its orders from
Redis and resumes every attempt; nothing is lost, nobody is charged twice, every
sandbox ledger agrees with windowpay, and every attempt is final within its channel's
reversal window.

The reversal window is the playbook's `reverse_give_up_after_s`: how long after its pay
call windowpay goes on settling an attempt by itself (querying, reversing) before it
gives the reversal up and leaves the trade to the follow-up and to reconciliation. It
is measured per attempt, from its start to its final state, on the service's own clock
(`created_at`, `finished_at`), at the deployment's time scale: the engine enforces the
window at that scale, and a restart counts in full against it."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from orchestrator.config import Config
from orchestrator.domain.states import Channel
from orchestrator.generated.windowpay.v1 import windowpay_pb2 as pb
from tests.faults.conftest import SERVICE_POINTS, Stack
from tests.faults.load import BY_PB, through_fault


def reversal_windows(config: Config) -> dict[Channel, float]:
    """Seconds after its pay call within which each channel's attempts settle by
    themselves, as the deployment runs them (time scale applied). Cash has none."""
    return {
        channel: config.playbook(channel).reverse_give_up_after_s
        for channel in config.playbooks
        if channel is not Channel.CASH
    }


def outside_the_window(
    final: dict[str, pb.Order], windows: dict[Channel, float]
) -> tuple[list[str], dict[str, float]]:
    """Attempts not final within their channel's reversal window (a reversal given up
    counts as not final: the follow-up has it), and the slowest start-to-final seconds
    per channel."""
    late: list[str] = []
    slowest: dict[str, float] = {}
    for order in final.values():
        for attempt in order.attempts:
            channel = BY_PB[attempt.channel]
            if channel not in windows:
                continue
            if not attempt.HasField("finished_at"):
                late.append(f"{attempt.attempt_id} ({channel.value}): final without an end time")
                continue
            started, ended = attempt.created_at, attempt.finished_at
            took = (ended.ToMilliseconds() - started.ToMilliseconds()) / 1000
            slowest[channel.value] = max(slowest.get(channel.value, 0.0), round(took, 1))
            given_up = ", its reversal given up" if attempt.follow_up else ""
            if took > windows[channel] or given_up:
                late.append(
                    f"{attempt.attempt_id} ({channel.value}): final after {took:.1f} s"
                    f"{given_up}; window {windows[channel]:.0f} s"
                )
    return late, slowest


async def test_every_actor_killed_mid_payment(deployment: Stack) -> None:
    stack = deployment
    served = stack.served
    figures: dict[str, float] = {}

    async def kill_every_actor() -> None:
        pids = served.actor_pids()
        assert len(pids) == SERVICE_POINTS
        started = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        # Healthy again: a new process for every actor, and health SERVING.
        while True:
            fresh = set(served.actor_pids()) - set(pids)
            if fresh and "first_respawn_after_s" not in figures:
                figures["first_respawn_after_s"] = round(time.monotonic() - started, 1)
            if len(fresh) == SERVICE_POINTS and "all_respawned_after_s" not in figures:
                figures["all_respawned_after_s"] = round(time.monotonic() - started, 1)
            if len(fresh) == SERVICE_POINTS and await asyncio.to_thread(served.health) == "SERVING":
                break
            assert time.monotonic() - started < 120, "the actors did not come back"
            await asyncio.sleep(0.2)
        figures["healthy_after_s"] = round(time.monotonic() - started, 1)

    outcome = await through_fault(
        stack.data_dir, stack.terminals, stack.windows, stack.sandboxes, kill_every_actor
    )
    windows = reversal_windows(stack.config)
    late, slowest = outside_the_window(outcome.final, windows)
    stack.record(
        "1-actors-killed",
        payments=len(outcome.payments),
        actors_killed=SERVICE_POINTS,
        **figures,
        all_final_after_s=outcome.all_final_after_s,
        ledgers_agree_after_s=outcome.ledgers_agree_after_s,
        reversal_window_s={channel.value: window for channel, window in windows.items()},
        slowest_attempt_final_after_s=slowest,
        final_outside_the_window=len(late),
        client_retries=outcome.retries,
        retried_codes=outcome.retried_codes,
        problems=len(outcome.found),
        double_charges=outcome.doubles,
    )
    assert outcome.found == []
    assert outcome.doubles == 0
    assert late == []

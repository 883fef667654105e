"""How the serving process tells that its Ray node is lost (the supervision contract),
with Ray's answers replaced: these tests never start Ray."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from actors import runtime
from orchestrator.healthcheck import DEFAULT_TARGET, target_of
from orchestrator.runfile import RunInfo


def fake_ray(
    monkeypatch: pytest.MonkeyPatch, *, dead: list[str] | None = None, alive: object = True
) -> None:
    monkeypatch.setattr(runtime, "lost_daemons", lambda: list(dead or []))

    def node_alive() -> bool:
        if isinstance(alive, BaseException):
            raise alive
        if isinstance(alive, threading.Event):
            alive.wait(5)  # the cluster does not answer
            return True
        return bool(alive)

    monkeypatch.setattr(runtime, "node_alive", node_alive)


async def test_a_dead_daemon_is_seen_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ray(monkeypatch, dead=["raylet"])
    reason = await asyncio.wait_for(runtime.watch_cluster(every_s=0.01), 2)
    assert "raylet" in reason


async def test_a_node_the_cluster_declared_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ray(monkeypatch, alive=False)
    reason = await asyncio.wait_for(runtime.watch_cluster(every_s=0.01), 2)
    assert "declared this node dead" in reason


async def test_a_cluster_that_stops_answering(monkeypatch: pytest.MonkeyPatch) -> None:
    silent = threading.Event()
    fake_ray(monkeypatch, alive=silent)
    try:
        reason = await asyncio.wait_for(
            runtime.watch_cluster(every_s=0.01, unreachable_after_s=0.3), 3
        )
    finally:
        silent.set()
    assert "did not answer" in reason


async def test_errors_count_as_not_answering(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ray(monkeypatch, alive=ConnectionError("GCS gone"))
    reason = await asyncio.wait_for(runtime.watch_cluster(every_s=0.01, unreachable_after_s=0.2), 3)
    assert "did not answer" in reason


async def test_a_healthy_node_is_watched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ray(monkeypatch, alive=True)
    watch = asyncio.ensure_future(runtime.watch_cluster(every_s=0.01, unreachable_after_s=0.2))
    await asyncio.sleep(0.5)  # well past unreachable_after_s: answers keep it going
    assert not watch.done()
    watch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watch


def test_health_probe_finds_the_front_door(tmp_path: Path) -> None:
    assert target_of(tmp_path, None) == DEFAULT_TARGET
    assert target_of(tmp_path, "10.0.0.1:1") == "10.0.0.1:1"
    run = RunInfo("0.0.0.0:50051", "redis://x", "k", None, {}, 1)
    run.write(tmp_path)
    assert target_of(tmp_path, None) == "127.0.0.1:50051"  # every interface: loopback
    RunInfo("127.0.0.1:6000", "redis://x", "k", None, {}, 1).write(tmp_path)
    assert target_of(tmp_path, None) == "127.0.0.1:6000"

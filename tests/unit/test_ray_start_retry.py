"""Ray's local start is retried when its raylet registers late, and only then: no Ray is
started here (the start itself is replaced)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from actors import runtime


class FakeRay:
    """Counts the starts and shutdowns `_init_retrying` asks for; the first `late` starts
    fail as Ray's own does when the raylet misses its 30 s."""

    def __init__(self, late: int, error: str = runtime.LATE_RAYLET) -> None:
        self.late = late
        self.error = error
        self.starts: list[str | None] = []
        self.shutdowns = 0
        self.daemons: list[subprocess.Popen[bytes]] = []  # what each failed start left

    def init(self, num_cpus: int, address: str | None) -> None:
        self.starts.append(address)
        if len(self.starts) <= self.late:
            # as Ray's own: its GCS and raylet are running when the wait for them fails
            code = "import time; time.sleep(600)"
            self.daemons.append(subprocess.Popen([sys.executable, "-c", code]))
            raise Exception(f"The current node {self.error}. This could happen because ...")

    def shutdown(self) -> None:
        self.shutdowns += 1


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRay]:
    ray = FakeRay(late=0)
    monkeypatch.setattr(runtime, "_init", ray.init)
    monkeypatch.setattr(runtime.ray, "shutdown", ray.shutdown)
    yield ray
    for daemon in ray.daemons:
        daemon.kill()
        daemon.wait()


def test_a_late_raylet_is_shut_down_and_started_again(fake: FakeRay) -> None:
    fake.late = runtime.LOCAL_START_ATTEMPTS - 1
    elsewhere = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        runtime._init_retrying(1, None)
        assert fake.starts == [None] * runtime.LOCAL_START_ATTEMPTS
        assert fake.shutdowns == runtime.LOCAL_START_ATTEMPTS - 1
        # what each failed start left running is stopped; a child started before is not
        assert len(fake.daemons) == runtime.LOCAL_START_ATTEMPTS - 1
        assert all(daemon.poll() is not None for daemon in fake.daemons)
        assert psutil.Process(elsewhere.pid).is_running() and elsewhere.poll() is None
    finally:
        elsewhere.kill()
        elsewhere.wait()


def test_the_last_attempt_s_failure_is_raised(fake: FakeRay) -> None:
    fake.late = runtime.LOCAL_START_ATTEMPTS
    with pytest.raises(Exception, match=runtime.LATE_RAYLET):
        runtime._init_retrying(1, None)
    assert len(fake.starts) == runtime.LOCAL_START_ATTEMPTS
    assert all(daemon.poll() is not None for daemon in fake.daemons)  # the last one's too


def test_other_failures_are_not_retried(fake: FakeRay) -> None:
    fake.late, fake.error = 1, "could not find a free port"
    with pytest.raises(Exception, match="free port"):
        runtime._init_retrying(1, None)
    assert fake.starts == [None] and fake.shutdowns == 0


def test_joining_another_cluster_is_not_retried(fake: FakeRay) -> None:
    # a cluster someone else runs is theirs to restart; joining it fails at once
    fake.late = 1
    with pytest.raises(Exception, match=runtime.LATE_RAYLET):
        runtime._init_retrying(1, "127.0.0.1:6380")
    assert fake.starts == ["127.0.0.1:6380"] and fake.shutdowns == 0

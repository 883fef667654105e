"""Ray's local start is retried when its raylet registers late, and only then: no Ray is
started here (the start itself is replaced)."""

from __future__ import annotations

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

    def init(self, num_cpus: int, address: str | None) -> None:
        self.starts.append(address)
        if len(self.starts) <= self.late:
            raise Exception(f"The current node {self.error}. This could happen because ...")

    def shutdown(self) -> None:
        self.shutdowns += 1


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRay:
    ray = FakeRay(late=0)
    monkeypatch.setattr(runtime, "_init", ray.init)
    monkeypatch.setattr(runtime.ray, "shutdown", ray.shutdown)
    return ray


def test_a_late_raylet_is_shut_down_and_started_again(fake: FakeRay) -> None:
    fake.late = runtime.LOCAL_START_ATTEMPTS - 1
    runtime._init_retrying(1, None)
    assert fake.starts == [None] * runtime.LOCAL_START_ATTEMPTS
    assert fake.shutdowns == runtime.LOCAL_START_ATTEMPTS - 1


def test_the_last_attempt_s_failure_is_raised(fake: FakeRay) -> None:
    fake.late = runtime.LOCAL_START_ATTEMPTS
    with pytest.raises(Exception, match=runtime.LATE_RAYLET):
        runtime._init_retrying(1, None)
    assert len(fake.starts) == runtime.LOCAL_START_ATTEMPTS


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

"""The alert's figure: days whose last verification found something, from the outcomes
`windowpay audit verify` keeps in Redis."""

from __future__ import annotations

import orjson

from orchestrator.audit.job import summarise


def outcome(ok: bool, at: float) -> bytes:
    return orjson.dumps({"ok": ok, "findings": 0 if ok else 2, "at": at})


def test_a_day_counts_once_however_many_of_its_service_points_failed() -> None:
    outcomes = {
        b"2026-12-01": outcome(True, 10.0),
        b"2026-12-02 SP01": outcome(False, 20.0),
        b"2026-12-02 SP02": outcome(False, 30.0),
        b"2026-12-03": outcome(False, 5.0),
    }
    assert summarise(outcomes) == (2, 30.0)


def test_nothing_verified_is_nothing_broken() -> None:
    assert summarise({}) == (0, 0.0)

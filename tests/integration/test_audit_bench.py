"""The audit benchmark's generated day is what the record holds and the chain says: a
small one verifies with no finding, so the figure in docs/RECORD.md measures a clean day."""

from __future__ import annotations

from pathlib import Path

from loadtest.audit_bench import measure


async def test_a_small_generated_day_verifies_clean(database_url: str, tmp_path: Path) -> None:
    figures = await measure(database_url, 300, 3, tmp_path, close=False)
    assert figures["findings"] == 0
    assert figures["service_points"] == 3
    assert 300 <= figures["entries"] < 320  # whole orders: up to one more order per point

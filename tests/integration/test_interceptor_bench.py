"""The interceptor benchmark measures admitted calls: every call it makes, direct and
served, passes both interceptors (a refused one would abort the driving call or the
client's, and the run would fail), so the figures in docs/PERFORMANCE.md are of the
path every admitted call takes. No figure is judged here."""

from __future__ import annotations

import argparse

from loadtest.interceptor_bench import run


async def test_a_short_run_admits_every_call_and_gives_each_figure() -> None:
    figures = await run(argparse.Namespace(calls=200, repeat=1, concurrency=4))
    for kind in ("direct", "served_bare", "served_intercepted"):
        assert figures[f"{kind}_us_per_call"]["min"] > 0, kind
    assert set(figures["served_added_us_per_call"]) == {"min", "median", "max"}

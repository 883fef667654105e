"""The Locust targets of the benchmark: a scenario's p99 limits, and Locust's latencies
against the front door's own histogram over the same run (loadtest/agreement.py).

These depend on the machine, so they are the benchmark's targets and never the test
suite's: its Locust runs (tests/e2e/test_load_scenarios.py) only report them. Run from
loadtest/bench.py against a deployment it serves, or alone against one already served:

    python -m loadtest.locust_bench --data-dir var --time-scale 0.1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from loadtest import agreement, serverview
from orchestrator.runfile import RunInfo

REPO = Path(__file__).resolve().parent.parent


def run(data_dir: Path, prefix: Path, scenario: str, time_scale: float) -> dict[str, Any]:
    """One Locust run of `scenario` against the deployment served from `data_dir`, its
    p99 limits enforced; the front door's histogram scraped just before and after."""
    served = RunInfo.read(data_dir)
    if served is None:
        raise SystemExit(f"no run.json in {data_dir}: start `windowpay serve` first")
    address = serverview.metrics_address(served.redis_url, served.grpc)
    if address is None:
        raise SystemExit(f"the front door at {served.grpc} announces no /metrics")
    before = serverview.scrape(address)
    done = subprocess.run(
        agreement.locust_command(
            data_dir, prefix, "--scenario", scenario, "--time-scale", f"{time_scale:g}",
            "--json-file", str(prefix),  # Locust adds .json
        ),
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    after = serverview.scrape(address)
    out = done.stdout + done.stderr
    verdict = next((line for line in out.splitlines() if line.startswith(("PASSED", "FAILED"))), "")
    if not verdict:
        raise SystemExit(f"Locust ended without a verdict:\n{out[-3000:]}")
    failed = verdict.removeprefix("FAILED: ").split("; ") if verdict != "PASSED" else []
    entries = json.loads(prefix.with_suffix(".json").read_text())
    methods = agreement.compare(serverview.window(before, after), entries)
    return {
        "scenario": scenario,
        "time_scale": time_scale,
        "p99_over_limit": [f for f in failed if " p99 " in f],
        "other_problems": [f for f in failed if " p99 " not in f],
        "agreement": [str(m) for m in methods],
        "disagreements": [p for m in methods for p in m.problems],
    }


def report(figures: dict[str, Any]) -> list[tuple[str, bool]]:
    """Print the figures; return the targets as (what, met)."""
    print(f"Locust {figures['scenario']} at time scale {figures['time_scale']:g}:", flush=True)
    for line in figures["agreement"]:
        print(f"  {line}", flush=True)
    for problem in figures["other_problems"]:
        print(f"  not a latency problem, but a failed run: {problem}", flush=True)
    slow, apart = figures["p99_over_limit"], figures["disagreements"]
    return [
        ("Locust p99 within the scenario's limits" + (f" ({'; '.join(slow)})" if slow else ""),
         not slow),
        (f"Locust p50 within {agreement.P50_SLACK_MS:g} ms of the front door's p50 bucket, "
         f"p99 within a factor {agreement.P99_FACTOR:g} of its p99 bucket"
         + (f" ({'; '.join(apart)})" if apart else ""), not apart),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("var"))
    parser.add_argument("--scenario", default="steady_day")
    parser.add_argument("--time-scale", type=float, default=0.1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="windowpay-locust-") as tmp:
        figures = run(args.data_dir, Path(tmp) / args.scenario, args.scenario, args.time_scale)
    targets = report(figures)
    for what, met in targets:
        print(f"{'PASS' if met else 'FAIL'}  {what}")
    raise SystemExit(0 if all(met for _, met in targets) else 1)


if __name__ == "__main__":
    main()

"""bandit, a scanner no one here wrote, over windowpay's code: every finding is one the
baseline (bandit-baseline.toml) accepts with its reason, and every accepted finding is
still there (a stale entry would accept a new finding on the same line text)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "bandit-baseline.toml"

Finding = tuple[str, str, str]  # test id, file, the text of the line


def findings() -> Counter[Finding]:
    run = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-r", "orchestrator", "actors", "-f", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    report = json.loads(run.stdout)
    assert not report["errors"], report["errors"]
    found: Counter[Finding] = Counter()
    for result in report["results"]:
        lines = (ROOT / result["filename"]).read_text().splitlines()
        found[
            (result["test_id"], result["filename"], lines[result["line_number"] - 1].strip())
        ] += 1
    return found


def accepted() -> Counter[Finding]:
    baseline = tomllib.loads(BASELINE.read_text())
    listed: Counter[Finding] = Counter()
    for entry in baseline["accepted"]:
        assert entry["why"].strip(), f"{entry['test']}: an accepted finding needs its reason"
        for path, lines in entry["findings"].items():
            for line in lines:
                listed[(entry["test"], path, line)] += 1
    return listed


def test_every_bandit_finding_is_accepted_with_its_reason() -> None:
    found, listed = findings(), accepted()
    assert found, "bandit found nothing at all: is it scanning the code?"
    new = found - listed
    assert not new, f"findings the baseline does not accept (fix them, or accept them): {new}"
    stale = listed - found
    assert not stale, f"accepted findings that are gone (remove them from the baseline): {stale}"

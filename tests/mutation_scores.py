"""The mutation score of each module `make mutate` mutated: killed / total, read from the
results mutmut keeps beside its copy of the code (mutants/**/*.py.meta).

A mutant counts as killed when a test failed on it (or it ran past its time limit, which
a test run notices too); survivors, mutants no selected test reaches and mutants not run
yet all count against the score. A module none of whose mutants has run (a group
`make mutate MODULES=...` left out) is named apart, without a score. The exit status is
1 when a module that ran is under its target (issue 29: 90 % in `domain/`, 80 %
elsewhere), so `make mutate` fails then. Run from the repository's root:
`.venv/bin/python -m tests.mutation_scores`."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

KILLED = {"killed", "timeout"}


def target(module: str) -> float:
    """The share of a module's mutants that must be killed."""
    return 0.9 if module.startswith("orchestrator/domain/") else 0.8


def scores(root: Path) -> dict[str, Counter[str]]:
    """Each mutated module's mutants counted by mutmut's status."""
    by_module: dict[str, Counter[str]] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
        if exit_codes:
            module = str(meta.relative_to(root)).removesuffix(".meta")
            by_module[module] = Counter(status_by_exit_code[code] for code in exit_codes.values())
    return by_module


def main() -> int:
    by_module = scores(Path("mutants"))
    if not by_module:
        print("no mutants yet: run `make mutate`")
        return 1
    not_run = [m for m, counts in by_module.items() if set(counts) == {"not checked"}]
    print(f"{'module':<44} {'killed':>7} {'total':>6} {'score':>6}  other")
    under = []
    for module, counts in by_module.items():
        if module in not_run:
            continue
        killed, total = sum(counts[s] for s in KILLED), sum(counts.values())
        other = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s not in KILLED)
        print(f"{module:<44} {killed:>7} {total:>6} {killed / total:>6.1%}  {other}")
        if killed / total < target(module):
            under.append(f"{module} ({killed / total:.1%} < {target(module):.0%})")
    if not_run:
        print(f"not run: {', '.join(not_run)}")
    if under:
        print(f"under target: {', '.join(under)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

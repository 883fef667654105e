"""`make mutate`'s report (tests/mutation_scores.py) fails when a module that ran is under
its target: 90 % of its mutants killed in `domain/`, 80 % elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import mutation_scores


def results(root: Path, module: str, killed: int, survived: int) -> None:
    """mutmut's record of a module: exit code 1 for a killed mutant, 0 for a survivor."""
    meta = root / "mutants" / f"{module}.meta"
    meta.parent.mkdir(parents=True, exist_ok=True)
    codes = {f"m{n}": 1 for n in range(killed)} | {f"s{n}": 0 for n in range(survived)}
    meta.write_text(json.dumps({"exit_code_by_key": codes}))


def test_every_module_at_its_target_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results(tmp_path, "orchestrator/domain/money.py", killed=9, survived=1)  # 90 %
    results(tmp_path, "orchestrator/providers/engine.py", killed=8, survived=2)  # 80 %
    monkeypatch.chdir(tmp_path)
    assert mutation_scores.main() == 0


@pytest.mark.parametrize(
    ("module", "killed", "survived"),
    [("orchestrator/domain/money.py", 89, 11), ("orchestrator/providers/engine.py", 79, 21)],
)
def test_a_module_under_its_target_fails_the_report(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    module: str,
    killed: int,
    survived: int,
) -> None:
    results(tmp_path, module, killed, survived)
    monkeypatch.chdir(tmp_path)
    assert mutation_scores.main() == 1
    assert f"under target: {module}" in capsys.readouterr().out

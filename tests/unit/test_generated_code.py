"""The committed generated code must match what protogen makes from protos/ today."""

from pathlib import Path

from orchestrator.protogen import GENERATED, generate


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    fresh = generate(tmp_path)
    fresh_files = {p.relative_to(fresh): p.read_text() for p in fresh.rglob("*") if p.is_file()}
    committed = {
        p.relative_to(GENERATED): p.read_text()
        for p in GENERATED.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert committed.keys() == fresh_files.keys()
    stale = [str(name) for name, text in fresh_files.items() if committed[name] != text]
    assert not stale, f"stale generated files (run `make proto`): {stale}"

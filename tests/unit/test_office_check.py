"""`windowpay office check` prints the hierarchy a config holds, or exits 1 naming what
is wrong with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w

from orchestrator.cli import main
from tests.support import sample_data


def written(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "windowpay.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return str(path)


def test_the_sample_province_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["office", "check"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "province 云南省公安厅交通警察总队"
    assert "  office QJ: 曲靖市公安局交通警察支队车辆管理所 (曲靖市), 3 site(s)" in out
    assert "    site QJ-QL [convenience_point 便民点]: 麒麟区便民点" in out
    assert "      service point SP21 曲靖车管所本部: windows W46, W47, W48" in out
    assert out[-1] == (
        "ok: 2 office(s), 23 site(s), 23 service point(s), 50 window(s), 50 terminal(s)"
    )


def test_a_deployment_without_offices_is_printed_as_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = sample_data()
    for key in ("province", "offices", "sites"):
        del data[key]
    del data["access"]["offices"]  # a principal of an office needs offices
    del data["terminals"]["T50"]
    assert main(["office", "check", "--config", written(tmp_path, data)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "no [[offices]]: one office holding every service point"
    assert "      service point SP23 宣威市车管分所: windows W50 (no terminal)" in out
    assert out[-1].startswith("ok: 1 office(s), 0 site(s), 23 service point(s)")


def test_a_refused_hierarchy_exits_1_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = sample_data()
    data["sites"][-1]["service_points"].append("SP21")
    path = written(tmp_path, data)
    assert main(["office", "check", "--config", path]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"windowpay office check: refused: {path}.sites[22].service_points: service point "
        "SP21 is in two sites: QJ-HALL and QJ-XW\n"
    )

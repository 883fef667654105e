"""Deployments for load runs: the sample's catalog and playbooks, with as many service
points and windows as asked (terminal Tn... at each window)."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w


def deployment(
    service_points: int,
    windows_per_point: int,
    *,
    per_actor: int = 1,
    grpc_port: int = 0,
    metrics_port: int = 0,
    **service: Any,
) -> dict[str, Any]:
    text = resources.files("orchestrator.sample").joinpath("windowpay.toml").read_text()
    data = tomllib.loads(text)
    data["service"].update(
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        console_port=0,  # the console of a benchmark run: any free port
        service_points_per_actor=per_actor,
        log_level="warning",
        **service,
    )
    # One office: the sample's province of two cities names its own service points, and a
    # load run makes its own (the office hierarchy is docs/OFFICES.md's, not measured here).
    for section in ("province", "offices", "sites"):
        data.pop(section, None)
    data["access"].pop("offices", None)
    data["service_points"] = []
    data["terminals"] = {}
    data["supervisors"] = {}  # no refunds under load: no PINs to make at start
    # A benchmark's terminal pays back to back, far above a real one's 20 calls/s, its
    # business system creates as fast, and the auditor's consistency check reads every
    # order it made.
    data["access"]["limits"].update(
        terminal_rate=100_000, terminal_burst=100_000, business_rate=100_000,
        business_burst=100_000, other_rate=100_000, other_burst=100_000,
    )  # fmt: skip
    for i in range(1, service_points + 1):
        sp = f"P{i:04d}"
        windows = [f"{sp}W{j}" for j in range(1, windows_per_point + 1)]
        data["service_points"].append({"id": sp, "name": f"网点{i}", "windows": windows})
        for j, window in enumerate(windows, start=1):
            data["terminals"][f"{sp}T{j}"] = window
    return data


def write(data: dict[str, Any], path: Path) -> Path:
    path.write_text(tomli_w.dumps(data))
    return path


def windows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(window, terminal) pairs of the deployment."""
    by_window = {window: terminal for terminal, window in data["terminals"].items()}
    return [(w, by_window[w]) for sp in data["service_points"] for w in sp["windows"]]

"""The load runs' deployments are valid configurations: a load run that cannot start
measures nothing (the benchmark once failed at start when the sample became a
province of two cities whose sites name the sample's own service points)."""

from __future__ import annotations

from loadtest import deployments
from orchestrator.config import parse_config


def test_every_load_deployment_is_a_config_the_service_accepts() -> None:
    for points, windows, per_actor in ((20, 4, 10), (9, 5, 5), (500, 4, 25)):
        data = deployments.deployment(points, windows, per_actor=per_actor)
        config = parse_config(data, "load deployment")
        assert len(config.deployment.service_points) == points
        assert len(config.deployment.terminal_window) == points * windows
        assert deployments.windows(data)[0] == ("P0001W1", "P0001T1")

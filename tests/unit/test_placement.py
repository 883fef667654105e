"""Where the service-point actors go on a Ray cluster (actors/runtime.placements): the
config's choice, read against a cluster's node table. No Ray is started: the node
table is given."""

from __future__ import annotations

from typing import Any

import pytest
import ray

from actors.runtime import near, placements
from orchestrator.cli import main
from orchestrator.config import ConfigError, parse_config
from tests.support import small_config_data

A, B, C, D = (letter * 56 for letter in "abcd")  # node ids are 28 bytes, in hex
NODES = [
    {"NodeID": B, "Alive": True, "Resources": {"CPU": 4.0, "windowpay-hall": 1.0}},
    {"NodeID": A, "Alive": True, "Resources": {"CPU": 4.0}},
    {"NodeID": C, "Alive": False, "Resources": {"CPU": 4.0, "windowpay-hall": 1.0}},
    {"NodeID": D, "Alive": True, "Resources": {"CPU": 4.0, "windowpay-hall": 1.0}},
]


@pytest.fixture(autouse=True)
def cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray, "nodes", lambda: NODES)


HERE = "e" * 56  # the deploying process's node


def placed(**service: Any) -> list[tuple[str, bool, dict[str, float] | None]]:
    config = parse_config(small_config_data(**service), "placement")
    found = []
    for options in placements(config, 5, HERE):
        assert options["memory"] == 1024 * 1024  # some resource, so the affinity holds
        strategy = options["scheduling_strategy"]
        found.append((strategy.node_id, strategy.soft, options.get("resources")))
    return found


def test_pack_puts_every_actor_on_the_deploying_node_with_a_soft_affinity() -> None:
    assert placed() == [(HERE, True, None)] * 5


def test_spread_deals_the_actors_round_the_live_nodes_with_a_soft_affinity() -> None:
    assert placed(actor_placement="spread") == [
        (A, True, None),
        (B, True, None),
        (D, True, None),
        (A, True, None),
        (B, True, None),
    ]


def test_spread_over_the_nodes_holding_the_named_resource() -> None:
    share = {"windowpay-hall": 0.001}
    assert placed(actor_placement="spread", actor_resource="windowpay-hall") == [
        (B, True, share),
        (D, True, share),
        (B, True, share),
        (D, True, share),
        (B, True, share),
    ]


def test_pack_with_a_resource_asks_for_it() -> None:
    assert placed(actor_resource="windowpay-hall") == [(HERE, True, {"windowpay-hall": 0.001})] * 5


def test_the_singletons_stay_near_the_deploying_node() -> None:
    options = near(HERE)
    assert options["memory"] == 1024 * 1024
    assert (options["scheduling_strategy"].node_id, options["scheduling_strategy"].soft) == (
        HERE,
        True,
    )


def test_no_live_node_with_the_resource_is_refused_by_name() -> None:
    with pytest.raises(RuntimeError, match="no live Ray node holds the resource 'windowpay-gone'"):
        placed(actor_placement="spread", actor_resource="windowpay-gone")


def test_an_unknown_placement_is_refused_at_parse() -> None:
    with pytest.raises(ConfigError, match=r"actor_placement.*must be pack or spread"):
        parse_config(small_config_data(actor_placement="everywhere"), "placement")


@pytest.mark.parametrize(
    "args",
    [
        ["--local-cluster", "1"],
        ["--local-cluster", "2", "--ray-address", "127.0.0.1:6379"],
        ["--local-cluster", "2", "--join", "--ray-address", "127.0.0.1:6379"],
    ],
)
def test_a_local_cluster_of_fewer_than_two_nodes_or_beside_another_cluster_is_refused(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", *args]) == 2  # refused before anything starts
    assert "--local-cluster takes 2 nodes or more" in capsys.readouterr().err


def test_an_extra_front_door_without_the_cluster_address_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main(["serve", "--join"]) == 2  # refused before anything starts
    assert "--join needs the cluster's address" in capsys.readouterr().err

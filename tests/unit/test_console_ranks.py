"""The statistics page's walk of the hierarchy (console/ranks.py), without a database:
what each rank may narrow to, and the SQL that picks a unit's orders and names their part."""

from __future__ import annotations

from orchestrator.config import load_config
from orchestrator.console.accounts import Role, StaffAccount
from orchestrator.console.ranks import Level, RankRow, Ranks, Unit, lagging
from orchestrator.console.scope import StaffScope

CONFIG = load_config()  # the sample: KM (SP01-SP20, a site each) and QJ (SP21-SP23)
RANKS = Ranks(CONFIG.deployment.places, CONFIG.deployment.window_service_point)


def scope(role: Role, **place: str) -> StaffScope:
    return StaffScope.of(StaffAccount("x", role, "", **place), CONFIG.deployment.places)


def test_each_rank_narrows_to_its_own_unit_and_below() -> None:
    province = RANKS.units(scope(Role.PROVINCE))
    assert province[0] == Unit(Level.PROVINCE, "")
    assert Unit(Level.OFFICE, "QJ") in province and Unit(Level.POINT, "SP21") in province
    km = RANKS.units(scope(Role.DIRECTOR, office_id="KM"))
    assert km[0] == Unit(Level.OFFICE, "KM")
    assert Unit(Level.POINT, "SP20") in km
    assert not [u for u in km if u.id in ("", "QJ", "QJ-HALL", "SP21", "SP22", "SP23")]
    site = RANKS.units(scope(Role.SITE, site_id="QJ-HALL"))
    assert site == [Unit(Level.SITE, "QJ-HALL"), Unit(Level.POINT, "SP21")]
    head = RANKS.units(scope(Role.HEAD, service_point_id="SP21"))
    assert head == [Unit(Level.POINT, "SP21")]


def test_a_units_parts_are_its_offices_sites_points_or_windows() -> None:
    everyone = scope(Role.PROVINCE)
    assert RANKS.part_ids(Unit(Level.PROVINCE, ""), everyone) == ["KM", "QJ"]
    assert RANKS.part_ids(Unit(Level.OFFICE, "QJ"), everyone) == ["QJ-HALL", "QJ-QL", "QJ-XW"]
    assert RANKS.part_ids(Unit(Level.SITE, "QJ-HALL"), everyone) == ["SP21"]
    windows = RANKS.part_ids(Unit(Level.POINT, "SP21"), everyone)
    assert windows and all(CONFIG.deployment.window_service_point[w] == "SP21" for w in windows)
    clerk = StaffScope(Role.CLERK, "SP21", windows[0])
    assert RANKS.part_ids(Unit(Level.POINT, "SP21"), clerk) == windows[:1]


def test_a_unit_picks_its_orders_stamped_or_by_their_service_point_today() -> None:
    assert RANKS.where(Unit(Level.PROVINCE, "")) == ("TRUE", {})
    sql, params = RANKS.where(Unit(Level.OFFICE, "QJ"))
    assert "o.office_id = %(unit)s" in sql and "o.office_id = ''" in sql
    assert params == {"unit": "QJ", "unit_points": ["SP21", "SP22", "SP23"]}
    sql, params = RANKS.where(Unit(Level.SITE, "QJ-QL"))
    assert "o.site_id = %(unit)s" in sql and params["unit_points"] == ["SP22"]
    assert RANKS.where(Unit(Level.POINT, "SP22")) == (
        "o.service_point_id = %(unit)s",
        {"unit": "SP22"},
    )
    placed = RANKS.placed()
    at = placed["pl_sp"].index("SP22")
    assert (placed["pl_office"][at], placed["pl_site"][at]) == ("QJ", "QJ-QL")


def test_the_slowest_and_the_most_failing_part_lag() -> None:
    rows = [
        RankRow("KM", 10, 1000, 0, 10, 25.0),
        RankRow("QJ", 2, 800, 1, 2, 50.0),
        RankRow("XX", 5, 500, 5, 5, 20.0),
    ]
    assert lagging(rows) == {"QJ", "XX"}
    assert lagging(rows[:1]) == set()  # nothing to compare with
    assert lagging([RankRow("KM", 0, 0, 0, 0, None), RankRow("QJ", 0, 0, 0, 0, None)]) == set()

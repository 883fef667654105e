"""Exact values of the office hierarchy (domain/places.py), written for the mutants `make
mutate` found alive or untested (docs/TESTING.md, "Mutation testing"): a hierarchy built
by hand, each expected value written out."""

from __future__ import annotations

from orchestrator.domain.places import IMPLICIT, Office, Place, Places, Site, SiteKind

HALL = Site("KM-HALL", "KM", SiteKind.MAIN_HALL, "主厅", ("SP01", "SP02"))
POINT = Site("KM-CG", "KM", SiteKind.CONVENIENCE_POINT, "呈贡便民点", ("SP03",))
COUNTY = Site("QJ-XW", "QJ", SiteKind.COUNTY_OFFICE, "宣威分所", ("SP21",))
KM = Office("KM", "昆明市车管所", "昆明市", (HALL, POINT))
QJ = Office("QJ", "曲靖市车管所", "曲靖市", (COUNTY,))


def test_a_hierarchy_is_explicit_unless_said_and_places_every_point() -> None:
    places = Places.of("云南省", (KM, QJ))
    assert places.explicit is True
    assert places.province == "云南省"
    assert places.offices == (KM, QJ)
    assert places.place_of("SP02") == Place("KM", "KM-HALL")
    assert places.place_of("SP03") == Place("KM", "KM-CG")
    assert places.place_of("SP21") == Place("QJ", "QJ-XW")
    assert Places.of("", (KM,), explicit=False).explicit is False


def test_offices_and_sites_are_found_by_id_in_every_office() -> None:
    places = Places.of("云南省", (KM, QJ))
    assert places.office("KM") is KM
    assert places.office("QJ") is QJ
    assert places.office("") is None
    assert places.site("KM-HALL") is HALL
    assert places.site("KM-CG") is POINT
    assert places.site("QJ-XW") is COUNTY  # a site of the second office
    assert places.site("") is None
    assert places.sites == (HALL, POINT, COUNTY)
    assert KM.service_points == ("SP01", "SP02", "SP03")


def test_the_implicit_hierarchy_is_one_main_hall_named_as_its_office() -> None:
    places = Places.implicit("某车管所", ("SP1", "SP2"))
    site = Site(IMPLICIT, IMPLICIT, SiteKind.MAIN_HALL, "某车管所", ("SP1", "SP2"))
    assert places.offices == (Office(IMPLICIT, "某车管所", "", (site,)),)
    assert places.province == ""
    assert places.explicit is False
    assert places.sites == (site,)
    assert places.site(IMPLICIT) == site
    assert places.place_of("SP2") == Place(IMPLICIT, IMPLICIT)

"""The hierarchy of offices in the config (config._places, domain/places.py): the sample's
two cities, a deployment without offices as one office, and each refusal naming what is
wrong."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.config import ConfigError, load_config, parse_config
from orchestrator.domain.places import IMPLICIT, Place, SiteKind
from tests.support import sample_data


def test_the_sample_is_a_province_of_two_cities_with_several_sites_each() -> None:
    places = load_config().deployment.places
    assert places.explicit
    assert places.province == "云南省公安厅交通警察总队"
    assert [(o.id, o.city, len(o.sites)) for o in places.offices] == [
        ("KM", "昆明市", 20),
        ("QJ", "曲靖市", 3),
    ]
    assert {site.kind for site in places.office("KM").sites} == set(SiteKind)  # type: ignore[union-attr]
    assert places.place_of("SP01") == Place("KM", "KM-HALL")
    assert places.place_of("SP22") == Place("QJ", "QJ-QL")
    assert places.office("QJ").service_points == ("SP21", "SP22", "SP23")  # type: ignore[union-attr]
    assert places.site("KM-YL").kind is SiteKind.COUNTY_OFFICE  # type: ignore[union-attr]
    assert places.office("XX") is None and places.site("XX") is None


def test_a_deployment_without_offices_is_one_office_holding_every_point() -> None:
    data = sample_data()
    for key in ("province", "offices", "sites"):
        del data[key]
    del data["access"]["offices"]  # a principal of an office needs offices
    config = parse_config(data)
    places = config.deployment.places
    assert not places.explicit
    [office] = places.offices
    assert (office.id, office.name) == (IMPLICIT, config.office.name)
    assert office.service_points == tuple(sp.id for sp in config.deployment.service_points)
    assert places.place_of("SP22") == Place(IMPLICIT, IMPLICIT)


def test_a_site_may_hold_several_service_points() -> None:
    data = sample_data()
    data["sites"].remove(site(data, "QJ-QL"))
    site(data, "QJ-HALL")["service_points"].append("SP22")
    places = parse_config(data).deployment.places
    assert places.place_of("SP22") == Place("QJ", "QJ-HALL")
    assert places.site("QJ-HALL").service_points == ("SP21", "SP22")  # type: ignore[union-attr]
    assert [s.id for s in places.office("QJ").sites] == ["QJ-HALL", "QJ-XW"]  # type: ignore[union-attr]


def refused(change: Callable[[dict[str, Any]], None]) -> str:
    data = sample_data()
    change(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data, "windowpay.toml")
    return str(info.value)


def site(data: dict[str, Any], site_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in data["sites"] if s["id"] == site_id)
    return found


def test_a_site_naming_an_unknown_office_is_refused() -> None:
    message = refused(lambda d: site(d, "QJ-XW").update(office="ZT"))
    assert message == (
        "windowpay.toml.sites[22].office: site QJ-XW names unknown office 'ZT'; "
        "the offices are KM, QJ"
    )


def test_a_site_listing_an_unknown_service_point_is_refused() -> None:
    message = refused(lambda d: site(d, "QJ-XW")["service_points"].append("SP99"))
    assert message == (
        "windowpay.toml.sites[22].service_points: site QJ-XW lists unknown service point 'SP99'"
    )


def test_a_service_point_in_two_sites_is_refused() -> None:
    message = refused(lambda d: site(d, "QJ-XW")["service_points"].append("SP21"))
    assert message == (
        "windowpay.toml.sites[22].service_points: service point SP21 is in two sites: "
        "QJ-HALL and QJ-XW"
    )


def test_a_service_point_in_no_site_is_refused() -> None:
    message = refused(lambda d: d["sites"].remove(site(d, "QJ-QL")))
    assert message == "windowpay.toml.sites: no site holds service point SP22"


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            lambda d: d["offices"].append(dict(d["offices"][0])),
            "windowpay.toml.offices[2].id: office id KM appears twice",
        ),
        (
            lambda d: site(d, "QJ-QL").update(id="QJ-HALL"),
            "windowpay.toml.sites[21].id: site id QJ-HALL appears twice",
        ),
        (
            lambda d: site(d, "QJ-QL").update(id="QJ"),
            "windowpay.toml.sites[21].id: site id QJ appears twice",
        ),
    ],
)
def test_a_duplicate_office_or_site_id_is_refused(
    change: Callable[[dict[str, Any]], None], said: str
) -> None:
    assert refused(change).startswith(said)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda d: d["offices"][1].update(id="qj"), "offices[1].id: 'qj' must be"),
        (lambda d: site(d, "QJ-QL").update(kind="kiosk"), "unknown kind of site 'kiosk'"),
        (lambda d: site(d, "QJ-QL").update(service_points=[]), "site QJ-QL has no service points"),
        (lambda d: d["offices"][0].update(town="x"), "offices[0].town: unknown setting"),
        (lambda d: d["province"].update(code="53"), "province.code: unknown setting"),
        (lambda d: d["offices"][1].pop("name"), "offices[1].name: missing"),
        (
            lambda d: d["offices"].append({"id": "ZT", "name": "昭通"}),
            "offices[2].id: office ZT has no sites",
        ),
        (lambda d: d.pop("offices"), "windowpay.toml.sites: is given without [[offices]]"),
    ],
)
def test_other_mistakes_in_the_hierarchy_are_refused(
    change: Callable[[dict[str, Any]], None], said: str
) -> None:
    assert said in refused(change)

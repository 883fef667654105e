"""Where fees are taken, from the top: the province, its city offices (车管所), each
office's sites (its main hall and the places it runs away from it) and each site's
service points. Windows and terminals hang below the service points (config.py).

An order is stamped with its service point's office and site when it is made
(CreateOrderHandler): the office that took the money stays on the order however the
hierarchy changes later. A deployment that declares no offices is one office, the
implicit one, whose id is "" (its orders carry none, as before offices existed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class SiteKind(StrEnum):
    MAIN_HALL = "main_hall"  # 主厅: the office's own hall
    CONVENIENCE_POINT = "convenience_point"  # 便民点
    DISTRICT_OFFICE = "district_office"  # 大队车管办: at a district traffic-police brigade
    COUNTY_OFFICE = "county_office"  # 县分所: a county sub-office


SITE_KIND_NAMES = {
    SiteKind.MAIN_HALL: "主厅",
    SiteKind.CONVENIENCE_POINT: "便民点",
    SiteKind.DISTRICT_OFFICE: "大队车管办",
    SiteKind.COUNTY_OFFICE: "县分所",
}

IMPLICIT = ""  # the id of the one office (and site) of a deployment that declares none


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    office_id: str
    kind: SiteKind
    name: str
    service_points: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Office:
    id: str
    name: str
    city: str
    sites: tuple[Site, ...]

    @property
    def service_points(self) -> tuple[str, ...]:
        return tuple(sp for site in self.sites for sp in site.service_points)


@dataclass(frozen=True, slots=True)
class Place:
    """Where one service point sits: the ids an order made there carries."""

    office_id: str
    site_id: str


@dataclass(frozen=True)
class Places:
    """The hierarchy, checked whole (config.py refuses anything else): every service
    point in exactly one site, every site in one office, no id twice."""

    province: str  # its name; "" when the deployment gives none
    offices: tuple[Office, ...]
    explicit: bool  # False: no [[offices]] in the config, one implicit office
    _place: Mapping[str, Place] = field(default_factory=dict)  # service point -> place

    @classmethod
    def of(cls, province: str, offices: tuple[Office, ...], explicit: bool = True) -> Places:
        place = {
            sp: Place(office.id, site.id)
            for office in offices
            for site in office.sites
            for sp in site.service_points
        }
        return cls(province, offices, explicit, place)

    @classmethod
    def implicit(cls, name: str, service_points: tuple[str, ...]) -> Places:
        """One office with one site holding every service point."""
        site = Site(IMPLICIT, IMPLICIT, SiteKind.MAIN_HALL, name, service_points)
        return cls.of("", (Office(IMPLICIT, name, "", (site,)),), explicit=False)

    def place_of(self, service_point_id: str) -> Place:
        """Raises KeyError for a service point the hierarchy does not hold."""
        return self._place[service_point_id]

    def office(self, office_id: str) -> Office | None:
        return next((o for o in self.offices if o.id == office_id), None)

    def site(self, site_id: str) -> Site | None:
        return next((s for o in self.offices for s in o.sites if s.id == site_id), None)

    @property
    def sites(self) -> tuple[Site, ...]:
        return tuple(site for office in self.offices for site in office.sites)

"""Statistics by rank: the province, a city office, a site or a service point, each
shown as its parts side by side (the province's offices, an office's sites, a site's
service points, a point's windows), so that a leader sees which one lags.

What a viewer may narrow to is their own unit and what lies below it; the figures are
read under their scope (`StaffScope.where`) whatever unit is asked for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from orchestrator.console.accounts import Role
from orchestrator.console.scope import StaffScope
from orchestrator.domain.places import Places


class Level(StrEnum):
    PROVINCE = "province"
    OFFICE = "office"
    SITE = "site"
    POINT = "point"


PARTS = {  # each level is shown as its parts, one row each
    Level.PROVINCE: "office",
    Level.OFFICE: "site",
    Level.SITE: "service_point",
    Level.POINT: "window",
}


@dataclass(frozen=True, slots=True)
class Unit:
    level: Level
    id: str  # "" for the province

    @property
    def key(self) -> str:
        """As the page's form sends it: `office:KM`, `province:`."""
        return f"{self.level.value}:{self.id}"


@dataclass(frozen=True)
class Ranks:
    """The hierarchy as the statistics page walks it."""

    places: Places
    windows: Mapping[str, str]  # window -> service point

    def top(self, scope: StaffScope) -> Unit:
        """The widest unit the viewer sees."""
        if scope.role in (Role.CLERK, Role.HEAD):
            return Unit(Level.POINT, scope.service_point_id)
        if scope.role is Role.SITE:
            return Unit(Level.SITE, scope.site_id)
        if scope.office_id:
            return Unit(Level.OFFICE, scope.office_id)
        if self.places.explicit:
            return Unit(Level.PROVINCE, "")
        return Unit(Level.SITE, self.places.sites[0].id)  # one office, one implicit site

    def units(self, scope: StaffScope) -> list[Unit]:
        """The viewer's own unit and every unit below it, top down."""
        return self._below(self.top(scope))

    def _below(self, unit: Unit) -> list[Unit]:
        return [unit] + [u for part in self.parts(unit) for u in self._below(part)]

    def parts(self, unit: Unit) -> list[Unit]:
        """The units one level down (a point's windows are not units of their own)."""
        if unit.level is Level.PROVINCE:
            return [Unit(Level.OFFICE, o.id) for o in self.places.offices]
        if unit.level is Level.OFFICE:
            office = self.places.office(unit.id)
            return [Unit(Level.SITE, s.id) for s in office.sites] if office else []
        if unit.level is Level.SITE:
            site = self.places.site(unit.id)
            return [Unit(Level.POINT, sp) for sp in site.service_points] if site else []
        return []

    def part_ids(self, unit: Unit, scope: StaffScope) -> list[str]:
        """The ids of the rows the unit is shown as, in the hierarchy's order (a part
        with nothing to show still gets its row: an office with no payment lags most)."""
        if unit.level is Level.POINT:
            windows = sorted(w for w, sp in self.windows.items() if sp == unit.id)
            return [w for w in windows if scope.role is not Role.CLERK or w == scope.window_id]
        return [part.id for part in self.parts(unit)]

    def where(self, unit: Unit) -> tuple[str, dict[str, Any]]:
        """SQL over an orders row `o`: the orders of the unit (an order written before
        orders carried their office counts where its service point is today)."""
        if unit.level is Level.PROVINCE:
            return "TRUE", {}
        if unit.level is Level.POINT:
            return "o.service_point_id = %(unit)s", {"unit": unit.id}
        column = "office_id" if unit.level is Level.OFFICE else "site_id"
        found = self.places.office(unit.id) if unit.level is Level.OFFICE else None
        points = found.service_points if found else ()
        if unit.level is Level.SITE:
            site = self.places.site(unit.id)
            points = site.service_points if site else ()
        return (
            f"(o.{column} = %(unit)s OR (o.{column} = '' "
            "AND o.service_point_id = ANY(%(unit_points)s)))",
            {"unit": unit.id, "unit_points": list(points)},
        )

    def part_key(self, unit: Unit) -> tuple[str, dict[str, Any]]:
        """SQL naming the part of `unit` an orders row `o` belongs to; `pl` is the
        service point's place today (`placed` below), for rows without one stamped."""
        if unit.level is Level.PROVINCE:
            return "CASE WHEN o.office_id <> '' THEN o.office_id ELSE pl.office END", {}
        if unit.level is Level.OFFICE:
            return "CASE WHEN o.site_id <> '' THEN o.site_id ELSE pl.site END", {}
        if unit.level is Level.SITE:
            return "o.service_point_id", {}
        return "o.window_id", {}

    def placed(self) -> dict[str, list[str]]:
        """Parameters of the `pl` join: each service point's office and site today."""
        rows = [(sp, site.office_id, site.id) for site in self.places.sites
                for sp in site.service_points]  # fmt: skip
        return {
            "pl_sp": [r[0] for r in rows],
            "pl_office": [r[1] for r in rows],
            "pl_site": [r[2] for r in rows],
        }


@dataclass(frozen=True, slots=True)
class RankRow:
    id: str
    payments: int
    payments_fen: int
    failures: int  # attempts that ended failed or reversed
    paid_orders: int
    seconds_to_pay: float | None  # mean, order created -> paid

    @property
    def failure_share(self) -> float | None:
        tried = self.payments + self.failures
        return self.failures / tried if tried else None


def lagging(rows: list[RankRow]) -> set[str]:
    """The parts a leader looks at first: the slowest to pay and the one failing most
    (when there are at least two parts to compare and it has figures)."""
    if len(rows) < 2:
        return set()
    marked = set()
    timed = [r for r in rows if r.seconds_to_pay is not None]
    if timed:
        marked.add(max(timed, key=lambda r: r.seconds_to_pay or 0.0).id)
    failing = [r for r in rows if r.failure_share]
    if failing:
        marked.add(max(failing, key=lambda r: r.failure_share or 0.0).id)
    return marked

"""The one scope check every console read and command goes through.

Ranks, from the window up: a clerk sees their window, a head their service point, a site
head their site's service points, a director or auditor their city office, the provincial
supervisor every office. An office's or site's orders are those stamped with it, and
those written before orders carried their office ('') whose service point is the
office's (or site's) today, as `windowpay report --office` counts them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.console.accounts import OFFICE_ROLES, Role, StaffAccount
from orchestrator.console.labels import Refused
from orchestrator.domain.masking import mask_name
from orchestrator.domain.places import Places


class OutOfScope(Refused):
    """The page is outside what the signed-in account may see: 403."""

    def __init__(self, message: str, **values: str) -> None:
        super().__init__(403, message, **values)


class Unplaced(ValueError):
    """The account has no place in this deployment's hierarchy (a director made before
    the deployment had offices, or an office or site the config no longer has)."""


@dataclass(frozen=True, slots=True)
class StaffScope:
    role: Role
    service_point_id: str = ""
    window_id: str = ""
    office_id: str = ""  # director, auditor: their office ("": a deployment without offices)
    site_id: str = ""  # site head: their site
    points: frozenset[str] = frozenset()  # the office's or site's service points today

    @classmethod
    def of(cls, account: StaffAccount, places: Places | None = None) -> StaffScope:
        """The account's scope in this hierarchy (None: a deployment without offices).
        Raises Unplaced for an account the hierarchy has no place for."""
        scope = cls(account.role, account.service_point_id, account.window_id)
        if account.role in OFFICE_ROLES:
            if places is None or not places.explicit:
                return scope  # one office: all of it
            office = places.office(account.office_id)
            if office is None:
                what = f"office {account.office_id!r}" if account.office_id else "no office"
                raise Unplaced(f"{account.username} ({account.role}) belongs to {what}")
            return cls(account.role, office_id=office.id, points=frozenset(office.service_points))
        if account.role is Role.SITE:
            site = places.site(account.site_id) if places is not None else None
            if site is None or not account.site_id:
                raise Unplaced(f"{account.username} (site) belongs to site {account.site_id!r}")
            return cls(account.role, site_id=site.id, points=frozenset(site.service_points))
        return scope

    @property
    def may_cancel(self) -> bool:
        return self.role in (Role.HEAD, Role.SITE, Role.DIRECTOR)

    @property
    def office_wide(self) -> bool:
        """Sees what belongs to a whole office, not to a window, point or site (the
        reconciliation, the audit of the record)."""
        return self.role in (Role.DIRECTOR, Role.AUDITOR, Role.PROVINCE)

    @property
    def deployment_wide(self) -> bool:
        """Sees what belongs to no office: the provider's totals of a shared merchant
        account, a bill line that matches no order. The provincial supervisor, and a
        director or auditor of a deployment without offices."""
        return self.role is Role.PROVINCE or (self.office_wide and not self.office_id)

    @property
    def masks_names(self) -> bool:
        return self.role is Role.AUDITOR

    def allows(
        self, service_point_id: str, window_id: str, office_id: str = "", site_id: str = ""
    ) -> bool:
        if self.role is Role.CLERK:
            return window_id == self.window_id
        if self.role is Role.HEAD:
            return service_point_id == self.service_point_id
        if self.role is Role.SITE:
            return site_id == self.site_id or (not site_id and service_point_id in self.points)
        if self.role in OFFICE_ROLES and self.office_id:
            return office_id == self.office_id or (
                not office_id and service_point_id in self.points
            )
        return True

    def allows_order(self, order: Mapping[str, Any]) -> bool:
        """An orders row (or snapshot) of the record."""
        return self.allows(
            order["service_point_id"],
            order["window_id"],
            order.get("office_id") or "",
            order.get("site_id") or "",
        )

    def where(self, alias: str = "o") -> tuple[str, dict[str, Any]]:
        """The same rule as `allows`, as SQL over an orders row."""
        if self.role is Role.CLERK:
            return f"{alias}.window_id = %(scope_window)s", {"scope_window": self.window_id}
        if self.role is Role.HEAD:
            return f"{alias}.service_point_id = %(scope_sp)s", {"scope_sp": self.service_point_id}
        points = {"scope_points": sorted(self.points)}
        if self.role is Role.SITE:
            return (
                f"({alias}.site_id = %(scope_site)s OR ({alias}.site_id = '' "
                f"AND {alias}.service_point_id = ANY(%(scope_points)s)))",
                {"scope_site": self.site_id, **points},
            )
        if self.role in OFFICE_ROLES and self.office_id:
            return (
                f"({alias}.office_id = %(scope_office)s OR ({alias}.office_id = '' "
                f"AND {alias}.service_point_id = ANY(%(scope_points)s)))",
                {"scope_office": self.office_id, **points},
            )
        return "TRUE", {}

    def name(self, payer_name: str) -> str:
        return mask_name(payer_name) if self.masks_names else payer_name

"""The one scope check every console read and command goes through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.console.accounts import Role, StaffAccount
from orchestrator.console.labels import N_, Refused
from orchestrator.domain.masking import mask_name


class OutOfScope(Refused):
    """The order or page is outside what the signed-in account may see: 403."""

    def __init__(self, message: str, **values: str) -> None:
        super().__init__(403, message, **values)


@dataclass(frozen=True, slots=True)
class StaffScope:
    role: Role
    service_point_id: str = ""
    window_id: str = ""

    @classmethod
    def of(cls, account: StaffAccount) -> StaffScope:
        return cls(account.role, account.service_point_id, account.window_id)

    @property
    def may_cancel(self) -> bool:
        return self.role in (Role.HEAD, Role.DIRECTOR)

    @property
    def office_wide(self) -> bool:
        """Sees what belongs to the whole office, not to a window or service point (the
        reconciliation with the providers)."""
        return self.role in (Role.DIRECTOR, Role.AUDITOR)

    @property
    def masks_names(self) -> bool:
        return self.role is Role.AUDITOR

    def allows(self, service_point_id: str, window_id: str) -> bool:
        if self.role is Role.CLERK:
            return window_id == self.window_id
        if self.role is Role.HEAD:
            return service_point_id == self.service_point_id
        return True

    def check(self, service_point_id: str, window_id: str) -> None:
        if not self.allows(service_point_id, window_id):
            raise OutOfScope(
                N_("%(window)s at %(point)s is outside your scope."),
                window=window_id,
                point=service_point_id,
            )

    def where(self, alias: str = "o") -> tuple[str, dict[str, Any]]:
        """The same rule as `allows`, as SQL over an orders row."""
        if self.role is Role.CLERK:
            return f"{alias}.window_id = %(scope_window)s", {"scope_window": self.window_id}
        if self.role is Role.HEAD:
            return f"{alias}.service_point_id = %(scope_sp)s", {"scope_sp": self.service_point_id}
        return "TRUE", {}

    def name(self, payer_name: str) -> str:
        return mask_name(payer_name) if self.masks_names else payer_name

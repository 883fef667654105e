"""What the record says in codes (states, channels, roles, journal entries,
reconciliation kinds), as people read it: English message ids that the catalogs
translate. `N_` only marks a string for `pybabel extract`; `label` translates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.channels.registry import CHANNELS as REGISTERED
from orchestrator.console.i18n import Language


def N_(message: str) -> str:  # gettext's customary name for "mark only"
    return message


ORDER_STATES = {
    "AWAITING_PAYMENT": N_("Awaiting payment"),
    "PAYING": N_("Paying"),
    "PAID": N_("Paid"),
    "CANCELLED": N_("Cancelled"),
    "EXPIRED": N_("Expired"),
    "PARTIALLY_REFUNDED": N_("Partly refunded"),
    "REFUNDED": N_("Refunded"),
}
ATTEMPT_STATES = {
    "SUBMITTED": N_("Submitted"),
    "AWAITING_PAYER": N_("Awaiting the payer"),
    "SUCCEEDED": N_("Succeeded"),
    "FAILED": N_("Failed"),
    "REVERSING": N_("Reversing"),
    "REVERSED": N_("Reversed"),
    "UNKNOWN": N_("Outcome unknown"),
    "LATE_SUCCESS_REFUNDED": N_("Late success, refunded"),
}
REFUND_STATES = {
    "PENDING": N_("Refund in progress"),
    "SUCCEEDED": N_("Refunded"),
    "FAILED": N_("Refund failed"),
}
RECEIPT_STATES = {
    "ISSUED": N_("Issued"),
    "PARTIALLY_REFUNDED": N_("Partly refunded"),
    "REFUNDED": N_("Refunded"),
}
# The provider channels are named by their packages (ChannelSpec); cash is no package.
CHANNELS = {
    "CASH": N_("Cash"),
}
ROLES = {
    "clerk": N_("Clerk"),
    "head": N_("Service-point head"),
    "site": N_("Site head"),
    "director": N_("Director"),
    "auditor": N_("Auditor"),
    "province": N_("Provincial supervisor"),
}
JOURNAL = {
    "created": N_("Order created"),
    "attempt": N_("Payment attempt"),
    "refund": N_("Refund"),
    "cancelled": N_("Cancelled"),
    "expired": N_("Expired"),
    "late_success": N_("Late success found"),
}
DIFFERENCES = {
    "missing_at_provider": N_("Missing at the provider"),
    "missing_at_windowpay": N_("Missing at windowpay"),
    "amount_mismatch": N_("Amounts differ"),
    "state_mismatch": N_("States differ"),
    "duplicate_success": N_("Paid twice"),
    "matched": N_("Matched"),
}
RECONCILIATION_ROWS = {
    "payments": N_("Matched payments"),
    "refunds": N_("Matched refunds"),
    "no_bill": N_("No bill"),
    "difference": N_("Difference"),
}
KINDS: Mapping[str, Mapping[str, str]] = {
    "order": ORDER_STATES,
    "attempt": ATTEMPT_STATES,
    "refund": REFUND_STATES,
    "receipt": RECEIPT_STATES,
    "channel": CHANNELS,
    "role": ROLES,
    "journal": JOURNAL,
    "difference": DIFFERENCES,
    "row": RECONCILIATION_ROWS,
}

# Messages that reach a page as plain strings from code that keeps them in English
# (the sign-in checks, the scope rule): the page translates them by their text.
MESSAGES = (
    N_("The form has expired; please sign in again."),
    N_("Too many attempts; wait a minute."),
    N_("This account is locked after repeated failures; try again later."),
    N_("Wrong username or password."),
    NO_OFFICE := N_(
        "This account belongs to no office of this deployment; ask an administrator to give it one."
    ),
)


# Why a command was refused, by the domain's error code (its own detail stays English).
REFUSALS = {
    "NOT_FOUND": N_("The order was not found."),
    "FAILED_PRECONDITION": N_("The order can no longer be cancelled."),
    "PERMISSION_DENIED": N_("Your role cannot cancel orders."),
    "UNAVAILABLE": N_("The service point cannot be reached now; try again in a moment."),
}
REFUSED = N_("The cancellation was refused.")


@dataclass(frozen=True, slots=True)
class Refusal:
    """A command the service refused: the domain's error code and its detail."""

    code: str
    detail: str

    def text(self, language: Language) -> str:
        return language.gettext(REFUSALS.get(self.code, REFUSED))


class Refused(Exception):
    """A page that cannot be shown: its HTTP status and why, as a message id whose
    values are filled in after it is translated."""

    def __init__(self, status: int, message: str, **values: str) -> None:
        super().__init__(message % values if values else message)
        self.status = status
        self.message = message
        self.values = values

    def text(self, language: Language) -> str:
        translated = language.gettext(self.message)
        return translated % self.values if self.values else translated


def label(language: Language, kind: str, code: str | None) -> str:
    """The code's name in the language. A provider channel is named by its package
    (Chinese, as on receipts, or its English name); any other unknown code shows as it
    is."""
    if not code:
        return ""
    if kind == "channel":
        found = next((s for c, s in REGISTERED.items() if c.value == code), None)
        if found is not None:
            chinese = language.code.startswith("zh") or not found.english_name
            return found.display_name if chinese else found.english_name
    message = KINDS[kind].get(str(code))
    if message:
        return language.gettext(message)
    return str(code)
